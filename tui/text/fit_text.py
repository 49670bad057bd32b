"""``abtop.fit/1`` as Markdown for a person: per model, what stays resident and what may page, a
row per context with the least RAM and the verdict, and the ``--check`` figures beside them."""

from __future__ import annotations

from backends.units import human_bytes as hb
from backends.units import human_count
from tui.text.safe import safe


def _kv(row: dict) -> str:
    kv = row["kv"]
    if row["kv_bytes"] is None:
        return "n/a"
    parts = []
    if kv["swa_layers"]:
        parts.append(f"{kv['swa_layers']} window layers × {kv['swa_cells']:,} cells")
    if kv["layers"] - kv["swa_layers"]:
        parts.append(f"{kv['layers'] - kv['swa_layers']} global × {kv['cells']:,}")
    if kv["shared_layers"]:
        parts.append(f"{kv['shared_layers']} shared")
    src = "" if row["kv_source"] == "header" else f", {row['kv_source']}"
    return f"{hb(row['kv_bytes'])} ({', '.join(parts)}{src})" if parts else hb(row["kv_bytes"])


def _describe(m: dict) -> list[str]:
    info, w = m["info"] or {}, m["weights"]
    head = f"## {safe(m['spec'])}"
    bits = [info.get("arch") or "?", f"{human_count(info.get('params'))} params"]
    if info.get("ple"):
        bits.append(f"{human_count(info.get('params_effective'))} effective")
    if info.get("moe"):
        bits.append(f"{info['moe']['experts_used']} of {info['moe']['experts']} experts")
    bits += [info.get("quant") or "?", f"file {hb(w['file_bytes'])}"]
    if info.get("synthetic"):
        bits.append("shape twin")
    lines = [f"{head} — {', '.join(bits)}", ""]
    lines.append(
        f"- must stay in RAM: weights read every token {hb(w['every_token_file_bytes'])} as file pages + "
        f"{hb(w['repacked_bytes'])} repacked copies (anonymous; {w['repack_rule']}); the KV cache, compute "
        "buffers and runtime per context below"
    )
    for lk in w["lookups"]:
        how = "pre-faulted at load" if lk["prefaulted"] else "read on demand (lazy)"
        what = "per-layer embedding table" if "per_layer" in lk["name"] else "token embedding (input rows)"
        lines.append(f"- may stay on disk: {what} {hb(lk['bytes'])}, one {hb(lk['row_bytes'])} row per token ({how})")
    ex = w.get("experts")
    if ex:
        back = ex["back_after_tokens_uniform"]
        where = ("repacked into anonymous memory: resident, cannot page without swap" if ex["repacked"]
                 else "file pages: a share can page, each token then reads what it misses from disk")  # fmt: skip
        lines.append(
            f"- experts {hb(ex['bytes'])}, {hb(ex['active_bytes'])} read per token ({where}); with uniform routing "
            f"half are back after {back['p50']} tokens, 90 % after {back['p90']}, 99 % after {back['p99']} "
            "(a real model's skewed routing is slower)"
        )
    return lines


def markdown(doc: dict) -> str:
    p = doc["params"]
    ram = f" (--ram {hb(p['ram_bytes'])})" if p["ram_bytes"] else ""
    out = []
    for m in doc["models"]:
        if m["na"]:
            out += [f"## {safe(m['spec'])}", "", f"n/a: {safe(m['na'])}.", ""]
            continue
        out += _describe(m)
        if m.get("ctxs_note"):
            out.append(f"- contexts: {safe(m['ctxs_note'])}")
        if m["plan"] and m["plan"]["error"]:
            out.append(f"- n/a where the engine's plan is needed: {safe(m['plan']['error'])}")
        out += ["", f"| ctx | KV | compute | runtime | must stay resident | may page out | least RAM | file-size rule | verdict{ram} |",
                "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in m["contexts"]:
            v = r["verdict"] or "—"
            if r["verdict_why"]:
                v += f": {r['verdict_why']}"
            out.append(
                f"| {r['ctx']:,} | {_kv(r)} | {hb(r['compute_bytes'])} | {hb(r['runtime_bytes'])} | {hb(r['resident_bytes'])} "
                f"| {hb(r['pageable_bytes'])} | **{hb(r['least_ram_bytes'])}** | {hb(r['file_rule_bytes'])} | {safe(v)} |"
            )
        vram = m["contexts"][0]["vram"] if m["contexts"] else None
        if vram and vram["why"] and vram["vram_bytes"] is None:
            out += ["", f"VRAM: {safe(vram['why'])}."]
        elif vram:
            rows = ", ".join(f"{r['ctx']:,}: {hb(r['vram']['vram_bytes'])}" + (f" {r['vram']['verdict']}" if r["vram"]["verdict"] else "")
                             for r in m["contexts"])  # fmt: skip
            out += ["", f"VRAM with every layer offloaded ({hb(vram['host_bytes'])} of looked-up tables stay on the host): {rows}."]
        if m["check"]:
            out += [""] + _check(m["check"])
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _check(c: dict) -> list[str]:
    if "error" in c:
        return [f"--check: {safe(c['error'])}"]
    box = c["box"]
    share = "" if box["worker_cpu_s"] is None or not box["wall_s"] else (
        f"; the worker got {box['worker_cpu_s'] / box['wall_s']:.1f} of {box['cores']} cores (load {box['load1_start']} → {box['load1_end']})"
    )  # fmt: skip
    lines = [
        f"Checked at --ctx {c['ctx']:,}: filled {c['fill_tokens']:,} tokens in {c['fill_s']:.0f} s, then {c['gen_tokens']} "
        f"generated at temperature {c['temperature']:g} from evicted weights{share}.",
        "",
        "| | predicted | measured | Δ |",
        "|---|---|---|---|",
    ]
    names = {"least_ram": "least RAM", "anon": "anonymous memory (peak)", "weights_needed": "weights' file pages needed",
             "kv": "KV cache (engine's buffer)"}  # fmt: skip
    if (c["vs"].get("vram") or {}).get("measured") is not None:
        names["vram"] = "VRAM (NVML, the process)"
    for key, label in names.items():
        d = c["vs"][key]
        delta = "n/a" if d["delta_pct"] is None else f"{d['delta_pct']:+.1f} %"
        lines.append(f"| {label} | {hb(d['predicted'])} | {hb(d['measured'])} | {delta} |")
    if c["weights_needed_bytes"] is None and c.get("weights_needed_note"):
        lines.append(f"\nweights' pages not measured: {safe(c['weights_needed_note'])}")
    lines.append(f"\nweights resident at peak (pre-faulted by llama.cpp): {hb(c['weights_resident_peak_bytes'])}; "
                 f"compute buffer reserved: {hb(c['compute_reserved_bytes'])}.")  # fmt: skip
    rule = c["vs"]["repack_rule"]
    if rule["agrees"]:
        lines.append(f"Repack rule agrees with the engine ({len(c['repacked_tensors'])} tensors repacked).")
    else:
        lines.append("Repack rule differs from the engine: predicted only " + (", ".join(rule["predicted_only"]) or "none")
                     + "; engine only " + (", ".join(rule["engine_only"]) or "none") + ".")  # fmt: skip
    curve = (c.get("working_set") or {}).get("curve")
    if curve:
        lines.append("Weights' pages back after n generated tokens: " + ", ".join(f"{n}: {hb(b)}" for n, b in curve) + ".")
    return lines


def summary(doc: dict) -> str:
    """One row per model and context (``bench --fit``): the least RAM and the verdict, n/a with why."""
    ram = f" (--ram {hb(doc['params']['ram_bytes'])})" if doc["params"].get("ram_bytes") else ""
    out = [f"| model | ctx | KV | must stay resident | may page out | least RAM | file-size rule | verdict{ram} |",
           "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for m in doc["models"]:
        name = safe(m["spec"]).replace("|", "\\|")
        if m["na"] or not m["contexts"]:
            out.append(f"| {name} | | | | | n/a | | {safe(m['na'] or (m['plan'] or {}).get('error') or 'n/a')} |")
            continue
        for r in m["contexts"]:
            v = (r["verdict"] or "—") + (f": {r['verdict_why']}" if r["verdict_why"] else "")
            out.append(
                f"| {name} | {r['ctx']:,} | {_kv(r)} | {hb(r['resident_bytes'])} | {hb(r['pageable_bytes'])} "
                f"| **{hb(r['least_ram_bytes'])}** | {hb(r['file_rule_bytes'])} | {safe(v).replace('|', '/')} |"
            )
    return "\n".join(out) + "\n"
