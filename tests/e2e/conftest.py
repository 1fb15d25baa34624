"""Shared fixtures for the end-to-end tests (see harness.py for the helpers).

Environment: KILN_BUILD_DIR (the CMake build dir, binaries in $KILN_BUILD_DIR/bin;
default <repo>/build) and KILN_SOURCE_DIR (default: the repo containing this file).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


class ProgramCache:
    """Traces + compiles each model once per session; tests share the program."""

    def __init__(self, root):
        self.root = root
        self.programs = {}

    def get(self, name, module, example_inputs, backend=None):
        key = (name, backend)
        if key not in self.programs:
            pt = os.path.join(self.root, f"{name}.pt")
            out = os.path.join(self.root, f"{name}.{backend or 'default'}.kiln")
            harness.trace(module, example_inputs).save(pt)
            harness.compile_ok(name, pt, out, backend)
            self.programs[key] = out
        return self.programs[key]


@pytest.fixture(scope="session")
def programs(tmp_path_factory):
    return ProgramCache(str(tmp_path_factory.mktemp("programs")))
