"""The compiled search loop of `index.CompiledMultiIndex` (numba; imported only when used).

A module of its own so numba can cache the compiled code on disk (`cache=True` works for
module-level functions): a new process loads it instead of compiling it again.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def popcount(typingctx: Any, x: Any) -> Any:  # the CPU's popcnt instruction
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])
    return types.int64(types.uint64), codegen


@intrinsic
def prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:  # start loading arr[idx] into cache
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(arr, idx), codegen


# The cost is random memory reads (bucket offsets, bucket entries, candidate hashes), so each
# query runs in passes that prefetch AHEAD items in advance instead of waiting on one cache
# miss at a time.
AHEAD = 12


@numba.njit(cache=True, nogil=True)
def search(qbe, qwords, chunk_offsets, chunk_widths, flips, shifts, masks, mask_start, bucket_base,
           bucket_off, entries, words, max_distance):
    nq = qbe.shape[0]
    nc = chunk_offsets.size
    # Chunk values of every query (bits [offset, offset + width) of the big-endian words).
    qkeys = np.empty((nq, nc), np.int64)
    for qi in range(nq):
        for c in range(nc):
            a, sh = divmod(chunk_offsets[c], 64)
            w = chunk_widths[c]
            if sh + w <= 64:
                v = (qbe[qi, a] >> np.uint64(64 - sh - w)) & np.uint64((1 << w) - 1)
            else:
                spill = sh + w - 64
                v = (((qbe[qi, a] & np.uint64((1 << (64 - sh)) - 1)) << np.uint64(spill))
                     | (qbe[qi, a + 1] >> np.uint64(64 - spill)))
            qkeys[qi, c] = np.int64(v)
    nb = 0
    for c in range(nc):
        if flips[c] >= 0:
            nb += mask_start[flips[c] + 1]
    bidx = np.empty(nb, np.int64)
    bchunk = np.empty(nb, np.int64)
    bstart = np.empty(nb, np.int64)
    bend = np.empty(nb, np.int64)
    cand_cap = 1024
    cand = np.empty(cand_cap, np.int64)
    cap = 256
    out_q = np.empty(cap, np.int64)
    out_r = np.empty(cap, np.int64)
    out_d = np.empty(cap, np.int64)
    count = 0
    low = np.uint64(0xFFFFFFFF)
    for qi in range(nq):
        j = 0
        for c in range(nc):
            t = flips[c]
            if t < 0:
                continue
            qp = qkeys[qi, c] >> shifts[c]
            for mi in range(mask_start[t + 1]):
                bidx[j] = bucket_base[c] + (qp ^ masks[mi])
                bchunk[j] = c
                j += 1
        for j in range(nb):
            if j + AHEAD < nb:
                prefetch(bucket_off, bidx[j + AHEAD])
            bstart[j] = bucket_off[bidx[j]]
            bend[j] = bucket_off[bidx[j] + 1]
        q0, q1, q2, q3 = qwords[qi, 0], qwords[qi, 1], qwords[qi, 2], qwords[qi, 3]
        n_cand = 0
        for j in range(nb):
            if j + AHEAD < nb:
                prefetch(entries, 2 * bstart[j + AHEAD])
            for p in range(2 * bstart[j], 2 * bend[j], 2):
                # Each entry carries 96 of the hash's bits: their distance is a lower bound
                # of the full distance, read sequentially from the bucket; the full hash (a
                # random read) is fetched only for the few entries within max_distance.
                e1 = entries[p + 1]
                if popcount(entries[p] ^ q0) + popcount((e1 ^ q1) & low) <= max_distance:
                    if n_cand == cand_cap:
                        cand_cap *= 2
                        grown = np.empty(cand_cap, np.int64)
                        grown[:n_cand] = cand[:n_cand]
                        cand = grown
                    cand[n_cand] = np.int64(e1 >> np.uint64(32))
                    n_cand += 1
        for i in range(n_cand):
            if i + AHEAD < n_cand:
                prefetch(words, 4 * cand[i + AHEAD])
            w = 4 * cand[i]
            d = popcount(words[w] ^ q0) + popcount(words[w + 1] ^ q1)
            if d > max_distance:
                continue
            d += popcount(words[w + 2] ^ q2) + popcount(words[w + 3] ^ q3)
            if d > max_distance:
                continue
            if count == cap:
                cap *= 2
                grown = np.empty(cap, np.int64)
                grown[:count] = out_q[:count]
                out_q = grown
                grown = np.empty(cap, np.int64)
                grown[:count] = out_r[:count]
                out_r = grown
                grown = np.empty(cap, np.int64)
                grown[:count] = out_d[:count]
                out_d = grown
            out_q[count] = qi
            out_r[count] = cand[i]
            out_d[count] = d
            count += 1
    return out_q[:count], out_r[:count], out_d[:count]
