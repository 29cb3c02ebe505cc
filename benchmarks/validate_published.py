"""Validation table: the performance model's predictions next to published training and decode runs.

One set of efficiency assumptions for every row. Prints each row and the median / max absolute error.
"""

from transformer_math.validation import decode_rows, summary, training_rows


def main() -> None:
    for title, rows in (("Training runs (A100 80GB)", training_rows()), ("Decode (gpt-fast, A100 80GB)", decode_rows())):
        print(f"\n{title}")
        print(f"  {'run':48s} {'metric':36s} {'measured':>10s} {'predicted':>10s} {'error':>8s}")
        for r in rows:
            if r.scored:
                print(f"  {r.id:48s} {r.metric:36s} {r.measured:10.1f} {r.predicted:10.1f} {r.error:+8.1%}")
            else:
                print(f"  {r.id:48s} {'not scored: ' + r.note[:60]}")
        shown = next((r for r in rows if r.formula), None)
        if shown:
            print(f"  e.g. {shown.id}: {shown.formula}")
        s = summary(rows)
        print(f"  → {s['rows']} rows: median |error| {s['median_abs_error']:.1%}, max {s['max_abs_error']:.1%}, "
              f"{s['within_20pct']} within ±20%")


if __name__ == "__main__":
    main()
