"""Offline stand-in for @rules_java//java:defs.bzl: forwards to the native rules.

Bazel 4 parses @bazel_tools//tools/jdk (registered toolchains) even for pure
C++ builds, and that package loads these names from @rules_java. Selected with
--config=offline; see build_tools/bazel/README.md.
"""

def java_binary(**kwargs):
    native.java_binary(**kwargs)

def java_import(**kwargs):
    native.java_import(**kwargs)

def java_library(**kwargs):
    native.java_library(**kwargs)

def java_runtime(**kwargs):
    native.java_runtime(**kwargs)

def java_toolchain(**kwargs):
    native.java_toolchain(**kwargs)
