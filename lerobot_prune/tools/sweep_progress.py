"""The sweep's bookkeeping while shards run: shard and cell results written as they arrive, and the progress bar."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import fields
from pathlib import Path

from .progress import progress_bar
from .sweep_backends import Shard
from .sweep_results import cell_record, cell_summary_line


class SweepProgress:
    """Writes shard and cell results as they arrive; a tqdm bar over cells and one line per finished cell.

    `cells` are the sweep's `Cell`s (name, pruning, setting); `plan` maps each cell name to its shards.
    """

    def __init__(self, cells: list, plan: dict[str, list[Shard]], out: Path):
        self.cells, self.plan, self.out = {c.name: c for c in cells}, plan, out
        self.finished = sum((out / "cells" / f"{c}.json").is_file() for c in self.cells)
        self.bar = None

    def shard_path(self, shard: Shard) -> Path:
        return self.out / "shards" / shard.cell / f"{shard.label}.json"

    def start(self, shards_to_run: int) -> None:
        total = len(self.cells)
        if self.finished:
            print(f"sweep: resuming in {self.out}: {self.finished}/{total} cells done, {shards_to_run} shards "
                  "to run", flush=True)  # fmt: skip
        for name in self.cells:  # cells whose shards all finished before an interruption
            if not (self.out / "cells" / f"{name}.json").is_file() and self._all_shards_done(name):
                self._finish_cell(name, announce=False)
        self.started = time.time()
        self.bar = progress_bar(total, "sweep", "cell", initial=self.finished, smoothing=0)

    def shard_done(self, spec: dict, record: dict) -> None:
        shard = Shard(**{f.name: spec[f.name] for f in fields(Shard)})
        write_json(self.shard_path(shard), record)
        self.bar.update(1 / len(self.plan[shard.cell]))
        if self._all_shards_done(shard.cell):
            self._finish_cell(shard.cell)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _all_shards_done(self, name: str) -> bool:
        return all(self.shard_path(s).is_file() for s in self.plan[name])

    def _finish_cell(self, name: str, announce: bool = True) -> None:
        cell = self.cells[name]
        shards = [json.loads(self.shard_path(s).read_text()) for s in self.plan[name]]
        record = cell_record(name, cell.pruning.type, cell.setting, cell.pruning.compact, shards)
        write_json(self.out / "cells" / f"{name}.json", record)
        self.finished += 1
        if announce:
            line = f"[{self.finished}/{len(self.cells)}] {cell_summary_line(record)}"
            if self.bar is not None:
                self.bar.write(line, file=sys.stdout)
                sys.stdout.flush()
            else:
                print(line, flush=True)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)  # atomic: an interrupted write leaves no half file that would count as finished
