"""A Feetech servo bus without hardware: LeRobot's real `FeetechMotorsBus` over an emulated serial port.

Only the pyserial object is replaced. `FakeFeetechSerial` answers the Feetech SCS protocol (ping, read,
write, sync read, sync write) from an in-memory control table per servo, so LeRobot's bus code and the
`scservo_sdk` packet handler run unchanged. Writes are appended as JSON lines to the file named by
`$PRUNE_FAKE_BUS_LOG` (when set), so a test can check which goal positions reached the motors.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import scservo_sdk as scs
from lerobot.motors.feetech import FeetechMotorsBus
from lerobot.motors.feetech.feetech import patch_setPacketTimeout
from lerobot.motors.feetech.tables import MODEL_CONTROL_TABLE, MODEL_NUMBER_TABLE

LOG_ENV = "PRUNE_FAKE_BUS_LOG"
FIRMWARE = (3, 10)
RANGE = (1024, 3072)  # raw Min/Max_Position_Limit every fake servo reports; see `write_calibration_file`
MEMORY_SIZE = 256
SO101_MOTORS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


class FakeServo:
    """One servo's control table (little-endian bytes, as protocol 0 stores them)."""

    def __init__(self, servo_id: int, model: str):
        table = MODEL_CONTROL_TABLE[model]
        self.id, self.table = servo_id, table
        self.names = {address: name for name, (address, _) in table.items()}
        self.memory = bytearray(MEMORY_SIZE)
        self.set("Firmware_Major_Version", FIRMWARE[0])
        self.set("Firmware_Minor_Version", FIRMWARE[1])
        self.set("Model_Number", MODEL_NUMBER_TABLE[model])
        self.set("ID", servo_id)
        self.set("Min_Position_Limit", RANGE[0])
        self.set("Max_Position_Limit", RANGE[1])
        self.set("Present_Position", sum(RANGE) // 2)

    def set(self, name: str, value: int) -> None:
        address, size = self.table[name]
        self.memory[address : address + size] = value.to_bytes(size, "little")

    def get(self, name: str) -> int:
        address, size = self.table[name]
        return int.from_bytes(self.memory[address : address + size], "little")

    def write(self, address: int, data: bytes) -> None:
        self.memory[address : address + len(data)] = data
        if address == self.table["Goal_Position"][0]:  # position control reaches its goal at once
            self.set("Present_Position", self.get("Goal_Position"))


def _packet(servo_id: int, first: int, params: bytes = b"") -> bytes:
    body = bytes([servo_id, len(params) + 2, first]) + params
    return b"\xff\xff" + body + bytes([~sum(body) & 0xFF])


class FakeFeetechSerial:
    """The subset of `serial.Serial` that `scservo_sdk.PortHandler` uses, answering as the servos would."""

    def __init__(self, port: str, servos: dict[int, FakeServo]):
        self.port, self.servos = port, servos
        self.rx = bytearray()
        self.lock = threading.Lock()
        self.log_path = os.environ.get(LOG_ENV)

    @property
    def in_waiting(self) -> int:
        return len(self.rx)

    def read(self, size: int = 1) -> bytes:
        with self.lock:
            out, self.rx[:] = bytes(self.rx[:size]), self.rx[size:]
        return out

    def write(self, data) -> int:
        data = bytes(data)
        with self.lock:
            self._handle(data)
        return len(data)

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        self.rx.clear()

    def close(self) -> None:
        pass

    def _handle(self, packet: bytes) -> None:
        if (
            len(packet) < 6
            or packet[:2] != b"\xff\xff"
            or _packet(packet[2], packet[4], packet[5:-1]) != packet
        ):
            return  # a corrupt packet gets no answer, as on a real bus
        target, instruction, params = packet[2], packet[4], packet[5:-1]
        if instruction == scs.INST_SYNC_WRITE:
            address, size = params[0], params[1]
            values = {}
            for i in range(2, len(params), size + 1):
                servo = self.servos.get(params[i])
                if servo is not None:
                    servo.write(address, params[i + 1 : i + 1 + size])
                    values[params[i]] = int.from_bytes(params[i + 1 : i + 1 + size], "little")
            self._log("sync_write", address, values)
        elif instruction == scs.INST_SYNC_READ:
            address, size = params[0], params[1]
            for servo_id in params[2:]:
                if servo_id in self.servos:
                    self.rx += _packet(
                        servo_id, 0, bytes(self.servos[servo_id].memory[address : address + size])
                    )
        else:
            targets = list(self.servos) if target == scs.BROADCAST_ID else [target]
            for servo_id in (t for t in targets if t in self.servos):
                self._single(self.servos[servo_id], instruction, params, reply=target != scs.BROADCAST_ID)

    def _single(self, servo: FakeServo, instruction: int, params: bytes, reply: bool) -> None:
        answer = b""
        if instruction == scs.INST_READ:
            answer = bytes(servo.memory[params[0] : params[0] + params[1]])
        elif instruction == scs.INST_WRITE:
            servo.write(params[0], params[1:])
            self._log("write", params[0], {servo.id: int.from_bytes(params[1:], "little")})
        elif instruction != scs.INST_PING:
            return
        if reply:
            self.rx += _packet(servo.id, 0, answer)

    def _log(self, op: str, address: int, values: dict[int, int]) -> None:
        if not self.log_path or not values:
            return
        register = next(iter(self.servos.values())).names.get(address, str(address))
        line = {"time": time.time(), "port": self.port, "op": op, "register": register,
                "values": {str(k): v for k, v in values.items()}}  # fmt: skip
        with open(self.log_path, "a") as f:
            f.write(json.dumps(line) + "\n")


class FakeFeetechPortHandler(scs.PortHandler):
    """`scservo_sdk.PortHandler` whose serial port is a `FakeFeetechSerial`."""

    def __init__(self, port_name: str, servos: dict[int, FakeServo]):
        super().__init__(port_name)
        self.servos = servos

    def setupPort(self, cflag_baud):  # noqa: N802  (SDK name)
        if self.is_open:
            self.closePort()
        self.ser = FakeFeetechSerial(self.port_name, self.servos)
        self.is_open = True
        self.tx_time_per_byte = (1000.0 / self.baudrate) * 10.0
        return True


_WORLD: dict[str, dict[int, FakeServo]] = {}


class FakeFeetechMotorsBus(FeetechMotorsBus):
    """LeRobot's `FeetechMotorsBus` talking to emulated servos, one per configured motor.

    Servos live per port name for the life of the process, so a reconnect finds the positions it left.
    """

    def __init__(self, port: str, motors, calibration=None, protocol_version: int = 0):
        super().__init__(port, motors, calibration, protocol_version)
        servos = _WORLD.setdefault(port, {})
        for motor in self.motors.values():
            servos.setdefault(motor.id, FakeServo(motor.id, motor.model))
        self.port_handler = FakeFeetechPortHandler(self.port, servos)
        self.port_handler.setPacketTimeout = patch_setPacketTimeout.__get__(
            self.port_handler, scs.PortHandler
        )
        self.sync_reader = scs.GroupSyncRead(self.port_handler, self.packet_handler, 0, 0)
        self.sync_writer = scs.GroupSyncWrite(self.port_handler, self.packet_handler, 0, 0)


def write_calibration_file(calibration_dir: str | Path, robot_id: str, motors=SO101_MOTORS) -> Path:
    """Writes `<calibration_dir>/<robot_id>.json` matching the fake servos, so connecting never prompts."""
    path = Path(calibration_dir) / f"{robot_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    calibration = {
        name: {"id": i, "drive_mode": 0, "homing_offset": 0, "range_min": RANGE[0], "range_max": RANGE[1]}
        for i, name in enumerate(motors, start=1)
    }
    path.write_text(json.dumps(calibration, indent=4))
    return path


def read_bus_log(path: str | Path, register: str | None = None) -> list[dict]:
    """The JSON lines a fake bus wrote (optionally only those of one register)."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [line for line in lines if register is None or line["register"] == register]
