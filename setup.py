# Only wires the cffi build of native/ (the C optimizer and memory pool); metadata lives in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["native/build.py:ffibuilder"])
