"""Reference digests for the 1008x1008 input resize, made with Pillow (what usls feeds SAM3).

Not part of the build: run it by hand with Pillow and NumPy installed when the pattern or sizes
change, and paste the output into test/engine/resample.test.ts.

    python3 scripts/reference/pil_resize_hashes.py
"""
import hashlib

import numpy as np
from PIL import Image

SIZES = [(800, 533), (4000, 3000), (1200, 900), (2016, 2016), (1008, 700), (37, 1500), (1008, 1008)]


def pattern(width: int, height: int) -> np.ndarray:
    """The same integer pattern as test/engine/resample.test.ts: edges, gradients and texture."""
    y, x = np.mgrid[0:height, 0:width].astype(np.int64)
    planes = [(x * 7 + y * 13 + c * 50 + ((x * y) % 17) * 5 + np.where((x // 37 + y // 29) % 2 == 0, 90, 0)) % 256 for c in range(3)]
    return np.stack(planes, axis=-1).astype(np.uint8)


for w, h in SIZES:
    out = Image.fromarray(pattern(w, h), "RGB").resize((1008, 1008), Image.BILINEAR)
    print(f'  "{w}x{h}": "{hashlib.sha256(np.asarray(out).tobytes()).hexdigest()}",')
