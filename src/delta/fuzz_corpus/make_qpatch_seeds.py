#!/usr/bin/env python3
"""Builds the qpatch_fuzzer seeds: the fuzzer's fixed old tree (as its Setup() writes it)
and a new tree with every kind of change (renamed and changed library, transform-2 ELF
delta, its transform-4 AArch64 twin with controls by column, gzip-delta, symlink, mode,
added and deleted files), patched with quietpatch-delta; and a file patch of the library (the compact header of
format 4). tree-format3.qpatch is what an earlier build made of the same trees (transform
3, format 3), kept so that the fuzzer starts from both.

    src/delta/fuzz_corpus/make_qpatch_seeds.py build/release/src/apps/quietpatch-delta
"""
import os, struct, subprocess, sys, tempfile

def old_tree(root):
    os.makedirs(f"{root}/lib")
    lib = bytes(((i * 7 + i // 13) & 0xff) for i in range(4096))
    open(f"{root}/lib/libfoo.so.1", "wb").write(lib)
    open(f"{root}/README", "wb").write(b"hello\n")
    os.symlink("libfoo.so.1", f"{root}/lib/libfoo.so")
    bar = bytearray(((i * 13 + i // 7) & 0xff) for i in range(8192))
    bar[0:120] = bytes(120)
    def put(at, v, n):
        bar[at:at + n] = (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")
    put(0, 0x464c457f, 4); put(4, 0x010102, 3); put(18, 62, 2); put(0x20, 64, 8)
    put(0x36, 56, 2); put(0x38, 1, 2); put(64, 1, 4); put(68, 5, 4)
    put(96, len(bar), 8); put(104, len(bar), 8)
    for k in range(60):
        at = 256 + k * 97
        put(at, 0xE8, 1); put(at + 1, 4096 + k * 61 - (at + 5), 4)
        put(at + 40, 0x058d48, 3); put(at + 43, 6000 + k * 8 - (at + 47), 4)
    open(f"{root}/lib/libbar.so", "wb").write(bar)
    put(18, 183, 2)
    open(f"{root}/lib/libbaz.so", "wb").write(bar)  # the AArch64 twin (transform 4)
    put(18, 62, 2)
    os.makedirs(f"{root}/doc")
    text = "".join(f"entry {k}: fixed a bug in the parser\n" for k in range(200)).encode()
    gz = subprocess.run(["gzip", "-9n", "-c"], input=text, capture_output=True, check=True).stdout
    open(f"{root}/doc/changelog.gz", "wb").write(gz)
    return lib, bytes(bar), text

def main():
    qp = sys.argv[1]
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qpatch")
    with tempfile.TemporaryDirectory() as t:
        lib, bar, text = old_tree(f"{t}/old")
        new = f"{t}/new"
        os.makedirs(f"{new}/lib"); os.makedirs(f"{new}/doc")
        open(f"{new}/lib/libfoo.so.2", "wb").write(lib[:1000] + b"inserted" + lib[1000:])
        os.symlink("libfoo.so.2", f"{new}/lib/libfoo.so")
        open(f"{new}/README", "wb").write(b"hello\n")
        os.chmod(f"{new}/README", 0o755)
        open(f"{new}/NEWS", "wb").write(b"a new file\n")
        nb = bytearray(bar)
        nb[3000:3010] = b"0123456789"
        nb[5000:5000] = bytes(32)
        open(f"{new}/lib/libbar.so", "wb").write(nb)
        nb[18:20] = (183).to_bytes(2, "little")
        open(f"{new}/lib/libbaz.so", "wb").write(nb)
        ntext = b"entry new: fixed the fuzzer seeds\n" + text
        gz = subprocess.run(["gzip", "-9n", "-c"], input=ntext, capture_output=True, check=True).stdout
        open(f"{new}/doc/changelog.gz", "wb").write(gz)
        os.chmod(f"{t}/old/README", 0o644)
        seed = os.path.join(out_dir, "tree.qpatch")
        if os.path.exists(seed):
            os.remove(seed)
        subprocess.run([qp, "diff", f"{t}/old", new, seed], check=True)
        subprocess.run([qp, "info", seed], check=True)
        seed = os.path.join(out_dir, "file.qpatch")
        if os.path.exists(seed):
            os.remove(seed)
        subprocess.run([qp, "diff", f"{t}/old/lib/libfoo.so.1", f"{new}/lib/libfoo.so.2", seed],
                       check=True)
        subprocess.run([qp, "info", seed], check=True)

main()
