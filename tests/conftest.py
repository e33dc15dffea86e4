"""The devices that tests taking a `device` argument run on: cpu, or the list in HORSESHOE_TEST_DEVICES.

benchmarks/gpu_check.sh sets HORSESHOE_TEST_DEVICES=cpu,cuda so that those tests run on both; a device
named there that this machine lacks fails the tests that take it (runtime.pick_device says why).
"""

import os


def devices_under_test() -> list[str]:
    return [name.strip() for name in os.environ.get("HORSESHOE_TEST_DEVICES", "cpu").split(",") if name.strip()]


def pytest_generate_tests(metafunc) -> None:
    own = {name.strip() for mark in metafunc.definition.iter_markers("parametrize")
           for name in (mark.args[0].split(",") if isinstance(mark.args[0], str) else mark.args[0])}
    if "device" in metafunc.fixturenames and "device" not in own:
        metafunc.parametrize("device", devices_under_test())
