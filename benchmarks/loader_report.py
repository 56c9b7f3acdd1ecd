"""The loader benchmark's targets and its ``loader.md`` report (measurements: ``benchmarks.loader``)."""

from __future__ import annotations

from typing import Any

MB_FLOOR = 1.0  # memory ratios divide by at least this many MB (a loader that holds no shared memory has 0)


def _rate(r: dict[str, Any], name: str) -> float:
    table = r["in_process"] if name in r["in_process"] else r["loops"]
    return table[name]["samples_per_s"]


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    b = r["config"]["batch_sizes"][0]
    w = max(r["config"]["workers"])
    out = []

    def add(name: str, value: float, op: str, limit: float, how: str) -> None:
        met = value <= limit if op == "<=" else value >= limit
        out.append({"target": name, "value": value, "op": op, "limit": limit, "met": bool(met), "how": how})

    add("herostore Loader, all modalities, default store ÷ copy limit of the same bytes",
        _rate(r, f"loader store all b{b}") / _rate(r, f"copy limit store all b{b}"), ">=", 0.5,
        f"batch {b}, {r['loader_threads']} threads both")
    add("herostore Loader (default store) ÷ np.load loop over the .npy folder, all modalities",
        _rate(r, f"loader store all b{b}") / _rate(r, "np.load .npy all reused"), ">=", 1.5, f"batch {b}")
    add(f"DataLoader({w} workers, collate), all modalities: default store ÷ .npy folder",
        _rate(r, f"dataloader({w}) store all b{b}") / _rate(r, f"dataloader({w}) npy all b{b}"), ">=", 3.0,
        f"batch {b}")
    add(f"DataLoader({w} workers, collate), audio+text: default store ÷ .npy folder",
        _rate(r, f"dataloader({w}) store audio_text b{b}") / _rate(r, f"dataloader({w}) npy audio_text b{b}"),
        ">=", 10.0, f"batch {b}")
    add("in-process reads (read_into), caller allocating between samples ÷ not",
        _rate(r, "read_into store all fresh") / _rate(r, "read_into store all reused"), ">=", 0.8,
        "all modalities, one thread")
    for key in ("rss_mb", "rss_shmem_mb"):
        worst, where = 0.0, ""
        for name, run in r["memory"].items():
            after = [e["after"] for e in run["epochs"]]
            ratio = max(after[-1][key], MB_FLOOR) / max(after[min(1, len(after) - 1)][key], MB_FLOOR)
            if ratio >= worst:
                worst, where = ratio, name
        add(f"{'RSS' if key == 'rss_mb' else 'shared memory (RssShmem)'} after epoch {len(after)} ÷ after epoch 2, "
            "worst of the loaders", worst, "<=", 1.05, f"worst: {where}")
    return out


def _n(x: float) -> str:
    return f"{x:,.0f}"


def markdown(r: dict[str, Any]) -> str:
    m, cfg = r["machine"], r["config"]
    lines = [
        f"# Loader benchmark ({r['mode']} run)",
        "",
        f"Command: `{r['command']}`  ",
        (f"Machine: {m['cpus']} CPUs ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, torch {m['torch']}, "
        f"numpy {m['numpy']}; load average {m['load_avg_start'][0]:.2f} at start, {m['load_avg_end'][0]:.2f} at end. "
        f"Run time {r['seconds']:.0f} s.  "),
        f"Data: {r['videos']} videos of {r['data']}; shapes "
        + ", ".join(f"{k} {v}" for k, v in cfg["shapes"].items() if k != "au_every")
        + f" (au in every {cfg['shapes']['au_every']}. video); the `.npy` folder (float32) and the default store "
        f"(`{r['default_preset']}`). Every figure: best of {cfg['rounds']} interleaved passes, spread = "
        "(best - worst) / best.",
        "",
        "## In-process reads, one thread",
        "",
        ("`fresh`: between samples the caller allocates and frees 16 MB and the heap's free memory is returned "
        "to the kernel (`malloc_trim`); only the reads are timed."),
        "",
        "| path | workload | samples/s | MB/s | spread | CPU µs/sample | fresh: samples/s | fresh ÷ reused |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    ip = r["in_process"]
    for name, v in ip.items():
        if not name.endswith(" reused"):
            continue
        base = name.removesuffix(" reused")
        path, workload = base.rsplit(" ", 1)
        f = ip[f"{base} fresh"]
        lines.append(f"| {path} | {workload} | {_n(v['samples_per_s'])} | {_n(v['mb_per_s'])} | {v['spread']:.0%} | "
                     f"{_n(v['cpu_us_per_sample'])} | {_n(f['samples_per_s'])} | "
                     f"{f['samples_per_s'] / v['samples_per_s']:.2f} |")
    lines += [
        "",
        "## Batches: herostore Loader and DataLoader, the consumer touching every page of every batch",
        "",
        (f"`loader`: `herostore.Loader(ds, batch, shuffle=True, seed=0)`, {r['loader_threads']} threads; "
        "`dataloader(k)`: `DataLoader(ds, batch, shuffle=True, num_workers=k, collate_fn=collate, "
        "persistent_workers=k > 0)`; `samples(k)`: the same DataLoader on the previous path (every sample made on "
        "its own, then `collate_samples`); the same `HeroDataset` arguments on all. `copy limit`: the stored bytes of "
        "the same batches copied from the page cache (`preadv`) into the rows of a ring of reused batch buffers on "
        "the loader's threads, nothing else. MB/s: bytes of the batches delivered (padded tensors)."),
        "",
    ]
    np_load = ip["np.load .npy all reused"]["samples_per_s"]
    for workload in ("all", "audio_text"):
        for b in cfg["batch_sizes"]:
            suffix = f" {workload} b{b}"
            rows = {k.removesuffix(suffix): v for k, v in r["loops"].items() if k.endswith(suffix)}
            limit = rows["copy limit store"]["samples_per_s"]
            lines += [f"### {workload.replace('_', '+')}, batch {b}", "",
                      "| path | samples/s | MB/s | spread | CPU µs/sample | ÷ copy limit | ÷ np.load loop (all) |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for name, v in rows.items():
                lines.append(f"| {name} | {_n(v['samples_per_s'])} | {_n(v['mb_per_s'])} | {v['spread']:.0%} | "
                             f"{_n(v['cpu_us_per_sample'])} | {v['samples_per_s'] / limit:.2f} | "
                             f"{v['samples_per_s'] / np_load:.2f} |")
            lines.append("")
    b = cfg["batch_sizes"][0]
    lines += [f"## Where the time goes: one thread building batches of {b} (`HeroDataset.batch`), then touching them",
              "",
              ("`ring`: into two reused buffers, as the Loader does; `fresh`: into new ordinary memory each batch (an "
              "in-process `DataLoader(num_workers=0)`); `shared`: into a new shared-memory segment each batch, as "
              "`collate` does in a DataLoader worker. A DataLoader with workers adds sending the batch (one file "
              "descriptor) and the training process mapping it."), "",
              ("| format | workload | ring: samples/s | CPU µs/sample | fresh: samples/s | CPU µs/sample "
              "| shared: samples/s | CPU µs/sample | shared ÷ ring |"),
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for fmt in ("npy", "store"):
        for workload in ("all", "audio_text"):
            v = {mem: r["builds"][f"build {mem} {fmt} {workload} b{b}"] for mem in ("ring", "fresh", "shared")}
            cells = " | ".join(f"{_n(v[m]['samples_per_s'])} | {_n(v[m]['cpu_us_per_sample'])}"
                               for m in ("ring", "fresh", "shared"))
            lines.append(f"| {fmt} | {workload} | {cells} | "
                         f"{v['shared']['samples_per_s'] / v['ring']['samples_per_s']:.2f} |")
    lines += [""]
    n_mem = cfg["memory_epochs"]
    lines += [f"## Memory over {n_mem} epochs (all modalities, the consumer touching every batch, a fresh process)", "",
              ("RSS: this process and its workers (shared pages counted in each); RssShmem: their shared-memory pages; "
               "After: the epoch's batches dropped; peak: read while each batch is held."),
              "",
              (f"| loader | after epoch 2: RSS MB | RssShmem MB | after epoch {n_mem}: RSS MB | RssShmem MB | "
              f"peak, epoch 2: RSS MB | RssShmem MB | peak, epoch {n_mem}: RSS MB | RssShmem MB |"),
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, run in r["memory"].items():
        e = run["epochs"]
        two, last = e[min(1, len(e) - 1)], e[-1]
        cells = [two["after"], last["after"], two["peak"], last["peak"]]
        lines.append(f"| {name} | " + " | ".join(f"{c['rss_mb']:.0f} | {c['rss_shmem_mb']:.0f}" for c in cells) + " |")
    lines += ["", "## Targets", "", "| target | how | value | target | met |", "|---|---|---:|---:|---|"]
    for g in r["targets"]:
        lines.append(f"| {g['target']} | {g['how']} | {g['value']:.3g} | {g['op']} {g['limit']:g} | "
                     f"{'met' if g['met'] else '**not met**'} |")
    return "\n".join(lines) + "\n"
