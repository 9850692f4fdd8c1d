"""python -m grader.build --out DIR [--root REPO] [--exercise NAME ...]"""
import argparse
import json
import sys

from grader.build import BuildError, build_course


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m grader.build", description=__doc__)
    ap.add_argument("--out", required=True, help="course directory to write")
    ap.add_argument("--root", default=".", help="repository root (course.toml, templates/, reference/)")
    ap.add_argument("--exercise", action="append", help="build only these exercises")
    args = ap.parse_args(argv)
    try:
        summary = build_course(args.out, args.root, exercises=args.exercise)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary.pop("generate_assignment_log", None)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
