"""Find, by bisection, the smallest arena TFLM's Python interpreter accepts and
invokes a model with.  Usage: tflm_min_arena.py MODEL.tflite [HI]
Prints `min_arena=<bytes> recorded=<bytes>` on stdout.  Each probe runs in a
child process so a crash at one size cannot take the bisection down."""
import subprocess
import sys

PROBE = r"""
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], 'rb').read()
it = runtime.Interpreter.from_bytes(data, arena_size=int(sys.argv[2]))
i = 0
while True:
    try:
        d = it.get_input_details(i)
    except Exception:
        break
    if not d:
        break
    it.set_input(np.zeros(d['shape'], dtype=d['dtype']), i)
    i += 1
it.invoke()
if len(sys.argv) > 3:
    it.print_allocations()
print('PROBE_OK')
"""


def probe(model, size, show=False):
    args = [sys.executable, '-c', PROBE, model, str(size)] + (['show'] if show else [])
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False, f'no answer within 120 s at {size} bytes'
    return r.returncode == 0 and 'PROBE_OK' in r.stdout, r.stdout + r.stderr


def main():
    model = sys.argv[1]
    hi = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20
    while not probe(model, hi)[0]:
        hi *= 2
        if hi > 1 << 28:
            print('error: model does not run with 256 MiB')
            sys.exit(1)
    lo = 0  # invariant: lo fails (or is 0), hi succeeds
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(model, mid)[0]:
            hi = mid
        else:
            lo = mid
    ok, out = probe(model, hi, show=True)
    recorded = -1
    for line in out.splitlines():
        if 'Arena allocation total' in line:
            recorded = int(line.split('total')[1].split()[0])
    print(f'min_arena={hi} recorded={recorded}')


if __name__ == '__main__':
    main()
