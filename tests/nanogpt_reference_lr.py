"""How the table in test_warmup_cosine.py was made: nanoGPT's own ``get_lr``, taken from its
train.py (github.com/karpathy/nanoGPT, commit 3adf61e1) at run time, not copied here:
``python tests/nanogpt_reference_lr.py PATH/TO/nanoGPT/train.py``. Not a test; its output is
pasted into the test.
"""
import ast
import math
import sys

source = open(sys.argv[1]).read()
(node,) = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "get_lr"]
configs = [
    dict(learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, lr_decay_iters=2000),   # the CPU recipe
    dict(learning_rate=6e-4, min_lr=6e-5, warmup_iters=2000, lr_decay_iters=600000),  # GPT-2's
    dict(learning_rate=0.01, min_lr=0.0, warmup_iters=0, lr_decay_iters=7),
]
its = [0, 1, 2, 7, 50, 99, 100, 101, 102, 500, 1000, 1337, 1999, 2000, 2001, 2500, 300000, 600000, 600001]
print("TABLE = [")
for config in configs:
    namespace = {"math": math, **config}
    exec(compile(ast.Module([node], []), "get_lr", "exec"), namespace)
    values = [(it, namespace["get_lr"](it)) for it in its]
    print(f"    ({config!r},\n     {values!r}),")
print("]")
