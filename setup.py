"""Build of the native engine core (C++17 through pybind11); everything else is in
pyproject.toml.

The extension is optional: without a C++ compiler (or if the build fails) the install
goes on without it, and ``asyncdex.engine.native`` reports the reference engine with a
warning (``native_available()`` is false).
"""

from __future__ import annotations

import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

try:
    from pybind11.setup_helpers import Pybind11Extension
except ImportError:  # pybind11 is a build requirement; without it there is nothing to build
    Pybind11Extension = None


class OptionalBuildExt(build_ext):
    """Builds the native core when it can; a failed build is a warning, never a failed install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:
            print(f"warning: the native engine core was not built ({error})", file=sys.stderr)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as error:
            print(f"warning: {ext.name} was not built ({error})", file=sys.stderr)


ext_modules = []
if Pybind11Extension is not None:
    ext_modules.append(
        Pybind11Extension(
            "asyncdex.engine._native_core",
            ["src/asyncdex/engine/_native/core.cpp"],
            cxx_std=17,
            extra_compile_args=["-O2"],
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
