"""The simulated controller's address space: namespace, node ids and their types.

Node ids are strings, stable across restarts and versions, because gateway
configuration names them (docs/opcua.md). The namespace is the first one the
server registers, so its index is 2 (0 is OPC UA's, 1 the server's own); a
client that resolves the URI instead (``nsu=urn:shelflink:sim:fridge;s=...``)
does not depend on that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

NAMESPACE_URI: Final = "urn:shelflink:sim:fridge"
NAMESPACE_INDEX: Final = 2
APPLICATION_URI: Final = "urn:shelflink:sim:fridge-controller"
ENDPOINT_PATH: Final = "/shelflink/fridges"
SIMULATION: Final = "Simulation"  # each fridge's child object holding the simulator's controls

VariableKind = Literal["Double", "Boolean"]
ValueField = Literal[
    "cabinet_c", "evaporator_c", "door_open", "compressor_on", "defrost_on", "alarm"
]


@dataclass(frozen=True, slots=True)
class VariableSpec:
    browse_name: str
    kind: VariableKind
    field: ValueField  # the ControllerValues field it shows
    description: str


VARIABLES: Final = (
    VariableSpec("CabinetTemperature", "Double", "cabinet_c", "cabinet air, °C"),
    VariableSpec("EvaporatorTemperature", "Double", "evaporator_c", "evaporator coil, °C"),
    VariableSpec("DoorOpen", "Boolean", "door_open", "the door was open in the last tick"),
    VariableSpec("CompressorOn", "Boolean", "compressor_on", "the compressor runs"),
    VariableSpec("DefrostOn", "Boolean", "defrost_on", "a defrost cycle runs"),
    VariableSpec("Alarm", "Boolean", "alarm", "cabinet above the alarm limit for the delay"),
)

# Methods of <fridge>.Simulation: not part of a real controller, the simulator's knobs.
INJECT_FAULT: Final = "InjectFault"  # (kind: String, duration_s: Double)
CLEAR_FAULTS: Final = "ClearFaults"  # ()
RELEASE_FORCED: Final = "ReleaseForced"  # () gives forced variables back to the model


def fridge_name(index: int) -> str:
    """The name of the ``index``-th fridge (0-based): ``fridge-01``, ``fridge-02``, ..."""
    if not 0 <= index < 99:
        raise ValueError("a simulated controller serves 1 to 99 fridges")
    return f"fridge-{index + 1:02d}"


def identifier(fridge: str, *path: str) -> str:
    """The string identifier of a node under ``fridge``: ``fridge-01.CabinetTemperature``."""
    return ".".join((fridge, *path))


def node_id(fridge: str, *path: str) -> str:
    """The node id as OPC UA writes it: ``ns=2;s=fridge-01.CabinetTemperature``."""
    return f"ns={NAMESPACE_INDEX};s={identifier(fridge, *path)}"
