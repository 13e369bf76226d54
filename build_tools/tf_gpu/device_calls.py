"""Prints the sequence of device calls that carries the staged parts to the
GPU test machine and installs TensorFlow there (then tf_gpu_check.sh's plan).

    python3 device_calls.py --stage .tfgpu --repo .
"""
import argparse
import glob
import json
import os
import subprocess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", required=True)
    ap.add_argument("--repo", required=True)
    a = ap.parse_args()
    stage, repo = os.path.abspath(a.stage), os.path.abspath(a.repo)
    rel = os.path.relpath(stage, repo)
    if rel.startswith(".."):
        raise SystemExit("the stage folder %s is outside the repository %s: the device "
                         "calls cannot carry it" % (stage, repo))
    parts = sorted(glob.glob(os.path.join(stage, "*.part*")))
    sizes = [os.path.getsize(p) for p in parts]
    tools = os.path.join(rel, "tools")
    with open(os.path.join(stage, "MANIFEST.txt")) as f:
        with_ci_so = "ci_so:" in f.read()  # stage --ci-so carried a CI-built library
    print("\n%d parts, %.0f MB. Device calls, one right after the other (the machine is "
          "given back 30 s after a call ends, and %s with it):"
          % (len(parts), sum(sizes) / 1e6, "/tmp/tfstash"))
    for i, p in enumerate(parts):
        carry = [os.path.join(rel, "parts.sha256"), os.path.join(rel, os.path.basename(p))]
        if i == 0:
            carry.append(tools)  # zstd for the device, as a wheel
        cmd = "build_tools/tf_gpu_env.sh receive"
        if i == len(parts) - 1:
            cmd += " && build_tools/tf_gpu_check.sh install %s" % (
                "use-so smoke build" if with_ci_so else "build smoke")
        print("  %d. run(command=%s, carry=%s, timeout_s=%d)"
              % (i + 1, json.dumps(cmd), json.dumps(carry), 600 if i == len(parts) - 1 else 300))
    print("\nThen (build_tools/tf_gpu_check.sh plan):")
    subprocess.run([os.path.join(repo, "build_tools", "tf_gpu_check.sh"), "plan"], check=False)


if __name__ == "__main__":
    main()
