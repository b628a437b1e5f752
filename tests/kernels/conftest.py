"""Run the Triton kernels on CPU through Triton's interpreter, without leaking the setting.

Triton picks interpreter or compiler when a ``@triton.jit`` kernel is decorated (when its module
is imported), and the interpreter reads ``TRITON_INTERPRET`` again while it runs. So this conftest
sets the variable while it (re)imports the kernel modules, restores the environment at once, and
sets it again only for the duration of each test in this folder: no other test sees it.
"""

import importlib
import os
import sys

import pytest

KERNEL_MODULES = ("kernels.rmsnorm", "kernels.rope", "kernels.swiglu", "kernels.fp8")

_previous = os.environ.get("TRITON_INTERPRET")
os.environ["TRITON_INTERPRET"] = "1"
try:
    for _name in KERNEL_MODULES:
        if _name in sys.modules:
            importlib.reload(sys.modules[_name])
        else:
            importlib.import_module(_name)
finally:
    if _previous is None:
        del os.environ["TRITON_INTERPRET"]
    else:
        os.environ["TRITON_INTERPRET"] = _previous


@pytest.fixture(autouse=True)
def triton_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
