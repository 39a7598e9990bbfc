#!/usr/bin/env python3
"""Writes the sample in replay-data/: context.toml and a week of signals (2026-03-02 to
2026-03-08) for two plants — Leeds (Europe/London, two shifts) and Austin
(America/Chicago, three shifts including nights, across the US clock change on 8 March).

Fifteen stations, discrete and continuous, with breaks, planned stops, SKU changeovers,
stops with error codes, a running counter that resets each morning, an energy meter, a
device (CNC-03) that is offline for four hours and delivers its buffer late, a station
reported in long CSV, and a few bad records. Seeded: the output is the same every run.

    python3 replay-data/make_sample.py
"""
import datetime as dt
import gzip
import json
import os
import random
from zoneinfo import ZoneInfo

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(20260302)
WEEK_START = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc) - dt.timedelta(hours=1)
WEEK_END = dt.datetime(2026, 3, 9, 6, tzinfo=dt.timezone.utc)

PLANTS = {
    "LEEDS": {"tz": "Europe/London", "currency": "GBP", "day_start_hour": 6, "pattern": "2x8",
              "shifts": [("Early", "06:00", "14:00", ["09:00-09:15", "11:30-12:00"]),
                         ("Late", "14:00", "22:00", ["17:00-17:15", "19:30-20:00"])],
              "days": ["Mon", "Tue", "Wed", "Thu", "Fri"]},
    "AUSTIN": {"tz": "America/Chicago", "currency": "USD", "day_start_hour": 7, "pattern": "3x8",
               "shifts": [("Day", "07:00", "15:00", ["10:00-10:15", "12:00-12:30"]),
                          ("Swing", "15:00", "23:00", ["18:00-18:15", "20:00-20:30"]),
                          ("Night", "23:00", "07:00", ["02:00-02:30", "04:30-04:45"])],
               "days": ["Sun", "Mon", "Tue", "Wed", "Thu"]},
}
# code, plant, line, kind, detection, ideal s/unit (station), extra
STATIONS = [
    ("PRESS-01", "LEEDS", "L1", "discrete", "utilisation", 1.2, {}),
    ("PRESS-02", "LEEDS", "L1", "discrete", "utilisation", 1.2, {}),
    ("PRESS-03", "LEEDS", "L1", "discrete", "utilisation", 1.5, {}),
    ("WELD-01", "LEEDS", "L2", "cycle", "production_cycle", 20.0, {}),
    ("WELD-02", "LEEDS", "L2", "cycle", "production_cycle", 20.0, {}),
    ("PACK-01", "LEEDS", "L2", "counter", "utilisation", 0.8, {}),
    ("EXTR-01", "LEEDS", "L3", "continuous", "utilisation", 0.5, {"speed_to_production_ratio": 1.0, "line_speed_target": 120.0}),
    ("OVEN-01", "LEEDS", "L3", "discrete", "utilisation", 20.0, {"energy": True}),
    ("CNC-01", "AUSTIN", "A1", "discrete", "utilisation", 30.0, {}),
    ("CNC-02", "AUSTIN", "A1", "discrete", "utilisation", 30.0, {}),
    ("CNC-03", "AUSTIN", "A1", "discrete", "utilisation", 45.0, {}),
    ("CNC-04", "AUSTIN", "A1", "cycle", "production_cycle", 45.0, {}),
    ("MOLD-01", "AUSTIN", "A2", "discrete", "utilisation", 12.0, {}),
    ("MOLD-02", "AUSTIN", "A2", "discrete", "utilisation", 12.0, {}),
    ("LINE-A", "AUSTIN", "A3", "continuous", "utilisation", 0.2, {"speed_to_production_ratio": 2.0, "line_speed_target": 140.0}),
]
# code, ideal seconds per cycle, unit value, parts per cycle
SKUS = [("WIDGET", 1.2, 0.35, 1), ("WIDGET-XL", 1.2, 0.55, 1), ("GADGET", 1.5, 0.50, 1), ("GADGET-XL", 1.5, 0.70, 1),
        ("HOUSING", 30.0, 18.0, 1), ("HOUSING-B", 30.0, 21.0, 1), ("SHAFT", 45.0, 26.0, 1), ("SHAFT-B", 45.0, 29.0, 1)]
# The SKUs each scheduled station alternates between (same ideal as the machine's rate).
STATION_SKUS = {"PRESS-01": ["WIDGET", "WIDGET-XL"], "PRESS-02": ["WIDGET", "WIDGET-XL"],
                "PRESS-03": ["GADGET", "GADGET-XL"], "CNC-01": ["HOUSING", "HOUSING-B"],
                "CNC-02": ["HOUSING", "HOUSING-B"], "CNC-03": ["SHAFT", "SHAFT-B"], "CNC-04": ["SHAFT", "SHAFT-B"]}
ERRORS = {"LEEDS": ["E12", "E42", "E57"], "AUSTIN": ["SPINDLE_OVERLOAD", "TOOL_BREAK", "DOOR_OPEN"]}
REASONS = [("E12", "Guard open", "SAFETY"), ("E42", "Jam at infeed", "MECH"), ("E57", "Die change overrun", "SETUP"),
           ("SPINDLE_OVERLOAD", "Spindle overload", "MECH"), ("TOOL_BREAK", "Tool broken", "TOOLING"),
           ("DOOR_OPEN", "Door open", "SAFETY")]


def iso(t):
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def shift_spans(plant):
    """Working spans (UTC) of a plant's shifts over the week, breaks excluded."""
    p = PLANTS[plant]
    tz = ZoneInfo(p["tz"])
    days = {"Mon": 0, "Tue": 1, "Wed": 2, "Thu": 3, "Fri": 4, "Sat": 5, "Sun": 6}
    spans = []
    for d in range(-1, 8):
        date = dt.date(2026, 3, 2) + dt.timedelta(days=d)
        if not any(days[x] == date.weekday() for x in p["days"]):
            continue
        for name, start, end, breaks in p["shifts"]:
            hs, ms = map(int, start.split(":"))
            he, me = map(int, end.split(":"))
            s = dt.datetime(date.year, date.month, date.day, hs, ms, tzinfo=tz)
            e = dt.datetime(date.year, date.month, date.day, he, me, tzinfo=tz)
            if e <= s:
                e = e + dt.timedelta(days=1)
                e = dt.datetime(e.year, e.month, e.day, he, me, tzinfo=tz)
            cuts = []
            for b in breaks:
                a, z = b.split("-")
                ba = dt.datetime(date.year, date.month, date.day, *map(int, a.split(":")), tzinfo=tz)
                if ba < s:
                    nd = date + dt.timedelta(days=1)
                    ba = dt.datetime(nd.year, nd.month, nd.day, *map(int, a.split(":")), tzinfo=tz)
                bz = dt.datetime(ba.year, ba.month, ba.day, *map(int, z.split(":")), tzinfo=tz)
                cuts.append((ba.astimezone(dt.timezone.utc), bz.astimezone(dt.timezone.utc)))
            cur = s.astimezone(dt.timezone.utc)
            for ba, bz in sorted(cuts):
                spans.append((cur, ba))
                cur = bz
            spans.append((cur, e.astimezone(dt.timezone.utc)))
    return [(a, b) for a, b in spans if b > WEEK_START and a < WEEK_END]


def simulate(code, plant, kind, ideal, extra):
    """A station's records as (ts, payload) in event time."""
    spans = shift_spans(plant)
    out = []
    seq = 0

    def emit(t, **kw):
        nonlocal seq
        seq += 1
        out.append((t, dict(station=code, ts=iso(t), seq=seq, **kw)))

    t = WEEK_START
    counter = 0
    kwh = 1000.0
    last_day = None
    emit(t, productive=0, error_code="", rssi=-55)
    for a, b in spans:
        # idle until the span starts: a heartbeat every 5 minutes keeps the device alive
        while t + dt.timedelta(minutes=5) < a:
            t += dt.timedelta(minutes=5)
            emit(t, rssi=-50 - rng.randint(0, 20))
        t = a
        emit(t, productive=1, error_code="")
        while t < b:
            if kind == "counter" and last_day != t.date():
                last_day = t.date()
                counter = 0  # the PLC resets its counter each day
            roll = rng.random()
            if roll < 0.004:
                # a stop: minor or real downtime, some with an error code
                length = rng.choice([60, 120, 200, 420, 900, 1800, 2400])
                err = rng.choice(ERRORS[plant]) if rng.random() < 0.6 else ""
                if kind == "continuous":
                    emit(t, productive=0, error_code=err, line_speed=0)
                else:
                    emit(t, productive=0, error_code=err)
                end = t + dt.timedelta(seconds=length)
                while t + dt.timedelta(seconds=240) < min(end, b):
                    t += dt.timedelta(seconds=240)
                    emit(t, rssi=-50 - rng.randint(0, 20))  # a heartbeat while stopped
                t = end
                if t >= b:
                    break
                emit(t, productive=1, error_code="")
                continue
            if kind == "cycle":
                # One record per completed cycle, as production_cycle detection expects.
                t += dt.timedelta(seconds=ideal * rng.uniform(1.0, 1.25))
                if t >= b:
                    break
                emit(t, **({"production_complete_bad": 1} if rng.random() < 0.02 else {"production_complete_good": 1}))
                continue
            step = 30
            t += dt.timedelta(seconds=step)
            if t >= b:
                break
            made = max(0, int(round(step / ideal * rng.uniform(0.75, 0.98)))) if ideal < step else int(rng.random() < step / ideal * 0.9)
            rejects = 1 if made and rng.random() < 0.04 else 0
            if kind == "continuous":
                emit(t, line_speed=round(rng.uniform(0.8, 1.0) * extra["line_speed_target"], 1))
            elif kind == "counter":
                counter += made
                emit(t, production_count_good=counter, production_complete_bad=rejects)
            elif made or rejects:
                payload = dict(production_complete_good=made - rejects)
                if rejects:
                    payload["production_complete_bad"] = rejects
                if extra.get("energy"):
                    kwh += rng.uniform(0.8, 1.2)
                    payload["electrical_kwh"] = round(kwh, 3)
                emit(t, **payload)
        if t > b:
            t = b
        if kind == "continuous":
            emit(t, productive=0, line_speed=0)
        else:
            emit(t, productive=0)
    while t + dt.timedelta(minutes=5) < WEEK_END:
        t += dt.timedelta(minutes=5)
        emit(t, rssi=-60)
    return out


def context_toml():
    lines = []
    for code, p in PLANTS.items():
        lines += ["[[plants]]", f'code = "{code}"', f'name = "{code.title()}"', f'timezone = "{p["tz"]}"',
                  f'currency = "{p["currency"]}"', f'day_start_hour = {p["day_start_hour"]}', ""]
    for line in sorted({(s[2], s[1]) for s in STATIONS}):
        lines += ["[[lines]]", f'code = "{line[0]}"', f'plant = "{line[1]}"', ""]
    for code, plant, line, kind, detection, ideal, extra in STATIONS:
        lines += ["[[stations]]", f'code = "{code}"', f'plant = "{plant}"', f'line = "{line}"',
                  f'shift_pattern = "{PLANTS[plant]["pattern"]}"', f'all_shift_time_planned = {"false" if code.startswith("CNC") or code.startswith("PRESS") else "true"}',
                  f"ideal_cycle_s = {ideal}", f'downtime_detection = "{detection}"', "downtime_threshold_s = 300",
                  f"idle_cost_per_minute = {2.0 if plant == 'LEEDS' else 3.5}"]
        for k, v in extra.items():
            if k != "energy":
                lines.append(f"{k} = {v}")
        lines.append("")
    for sku, ideal, value, ppc in SKUS:
        lines += ["[[skus]]", f'code = "{sku}"', f"ideal_cycle_s = {ideal / ppc}", f"unit_value = {value}",
                  f"parts_per_cycle = {ppc}", "min_cycle_s = 0.2", ""]
    for code, p in PLANTS.items():
        for name, start, end, breaks in p["shifts"]:
            lines += ["[[shifts]]", f'pattern = "{p["pattern"]}"', f'name = "{name}"',
                      "days = [" + ", ".join(f'"{d}"' for d in p["days"]) + "]",
                      f'start = "{start}"', f'end = "{end}"', "breaks = [" + ", ".join(f'"{b}"' for b in breaks) + "]", ""]
    # Production schedules with daily SKU changeovers (mid-shift, not on a minute boundary).
    for code, plant, *_ in STATIONS:
        if not (code.startswith("CNC") or code.startswith("PRESS")):
            continue
        skus = STATION_SKUS[code]
        for d in range(7):
            day = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc) + dt.timedelta(days=d)
            a = day.replace(hour=5 if plant == "LEEDS" else 12)
            mid = a + dt.timedelta(hours=12, seconds=30)
            z = a + dt.timedelta(hours=24)
            for i, (s, e) in enumerate([(a, mid), (mid, z)]):
                lines += ["[[schedule]]", f'station = "{code}"', f'sku = "{skus[(d + i) % 2]}"',
                          f'order_id = "WO-{code}-{d}{i}"', f'start = "{iso(s)}"', f'end = "{iso(e)}"', ""]
    lines += ["[[planned_stops]]", 'line = "L1"', 'start = "2026-03-04T10:00:00Z"', 'end = "2026-03-04T10:45:00Z"', 'reason = "PM"', ""]
    lines += ["[[planned_stops]]", 'station = "MOLD-01"', 'start = "2026-03-05T16:00:00Z"', 'end = "2026-03-05T17:30:00Z"', 'reason = "Mould change"', ""]
    lines += ["[[downtime_causes]]", 'station = "PRESS-02"', 'start = "2026-03-03T08:00:00Z"', 'end = "2026-03-03T12:00:00Z"', 'reason = "MATERIAL_SHORTAGE"', ""]
    for code, label, parent in REASONS:
        lines += ["[[reasons]]", f'code = "{code}"', f'label = "{label}"', f'parent = "{parent}"', 'kind = "downtime"', ""]
    lines += ["[[reasons]]", 'code = "MATERIAL_SHORTAGE"', 'label = "Waiting for material"', 'parent = "LOGISTICS"', 'kind = "downtime"', ""]
    return "\n".join(lines)


def main():
    with open(os.path.join(HERE, "context.toml"), "w") as f:
        f.write("# The sample plant context for replay-data/signals (generated by make_sample.py).\n\n")
        f.write(context_toml())
    for plant in PLANTS:
        arrivals = []
        for code, p, line, kind, detection, ideal, extra in STATIONS:
            if p != plant or code == "OVEN-01":
                continue
            recs = simulate(code, p, kind, ideal, extra)
            if code == "CNC-03":
                # Offline Wednesday 16:00-20:00 UTC: the device buffers and delivers at 20:05.
                off_a = dt.datetime(2026, 3, 4, 16, tzinfo=dt.timezone.utc)
                off_b = dt.datetime(2026, 3, 4, 20, tzinfo=dt.timezone.utc)
                deliver = dt.datetime(2026, 3, 4, 20, 5, tzinfo=dt.timezone.utc)
                recs = [(deliver if off_a <= t < off_b else t, payload) for t, payload in recs]
            arrivals += recs
        arrivals.sort(key=lambda x: x[0])
        lines = [json.dumps(payload, separators=(",", ":")) for _, payload in arrivals]
        # A few bad records, where they would really occur.
        bad = ['{"station":"PRESS-01","ts":"2026-03-03T07:00:00Z","productive":1',
               '{"station":"PRESS-01","productive":1}',
               '{"station":"PRESS-02","ts":"2026-03-03 07:00","productive":1}',
               '{"station":"PRESS-03","ts":"2026-03-03T07:00:05Z","production_complete_good":-4}',
               '{"station":"PRESS-99","ts":"2026-03-03T07:00:06Z","productive":1}'] if plant == "LEEDS" else \
              ['{"station":"CNC-01","ts":"2026-03-05T15:00:00Z","productive":"yes"}',
               '{"station":"LINE-A","ts":1772722800000,"line_speed":"NaN"}']
        for i, b in enumerate(bad):
            lines.insert(len(lines) // (i + 2), b)
        # A resent record (the same seq again) is a duplicate.
        lines.insert(len(lines) // 3 + 1, lines[len(lines) // 3])
        with gzip.open(os.path.join(HERE, "signals", f"{plant.lower()}.jsonl.gz"), "wt", compresslevel=9) as f:
            f.write("\n".join(lines) + "\n")
    # OVEN-01 reports through a gateway that writes the long CSV format.
    oven = next(s for s in STATIONS if s[0] == "OVEN-01")
    with gzip.open(os.path.join(HERE, "signals", "leeds-oven.csv.gz"), "wt", compresslevel=9) as f:
        f.write("station,ts,signal,value\n")
        for _, payload in simulate(*oven[:1], oven[1], oven[3], oven[5], oven[6]):
            for k, v in payload.items():
                if k not in ("station", "ts", "seq"):
                    f.write(f'{payload["station"]},{payload["ts"]},{k},{v}\n')


if __name__ == "__main__":
    main()
