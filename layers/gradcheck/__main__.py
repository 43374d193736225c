"""``python -m handprop.layers.gradcheck`` is an easy guess for the CLI; it lives in train/.

``layers/`` never imports ``train/``, so this entry point only says where the CLI is, and exits
with status 2 (a usage error) so that a script or CI never reads it as a pass.
"""
import sys

WHERE = ("handprop.layers.gradcheck is the checker's library; its command line is\n"
         "    python -m handprop.train.gradcheck {args}\n"
         "(every built-in layer, or --target MODULE:FACTORY for your own)")


def main(argv: list[str] | None = None) -> int:
    args = " ".join(sys.argv[1:] if argv is None else argv) or "[--fast] [--target MODULE:FACTORY]"
    print(WHERE.format(args=args), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
