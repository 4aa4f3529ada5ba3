"""Build of the compiled ops; the package metadata lives in pyproject.toml."""

from setuptools import setup

setup()
