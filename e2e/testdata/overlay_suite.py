#!/usr/bin/python3
# Overlay semantics, run inside a sandbox over a lower layer made by the
# test (see overlay_test.go for the layout under BASE). One line per check:
# "ok NAME [detail]" or "FAIL NAME: detail"; "info NAME: detail" records
# what the driver did where drivers may differ.
import errno
import mmap
import os
import subprocess
import sys
import time

BASE = sys.argv[1]
MANY = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
FAILED = False


def p(*parts):
    return os.path.join(BASE, *parts)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check(name, fn):
    global FAILED
    try:
        detail = fn()
    except AssertionError as e:
        FAILED = True
        print("FAIL %s: %s" % (name, e), flush=True)
        return
    except OSError as e:
        FAILED = True
        print("FAIL %s: %s" % (name, e), flush=True)
        return
    print("ok %s%s" % (name, " " + detail if detail else ""), flush=True)


def want(cond, msg):
    if not cond:
        raise AssertionError(msg)


def copy_up():
    with open(p("file"), "ab") as f:
        f.write(b"upper\n")
    got = read(p("file"))
    want(got == b"lower\nupper\n", "content after append %r" % got)


def whiteout():
    os.unlink(p("del"))
    want(not os.path.lexists(p("del")), "deleted lower file still there")
    want("del" not in os.listdir(BASE), "deleted lower file still listed")
    try:
        open(p("del"))
        raise AssertionError("open of a deleted lower file succeeded")
    except FileNotFoundError:
        pass


def opaque():
    subprocess.run(["rm", "-rf", p("dir")], check=True)
    want(not os.path.lexists(p("dir")), "deleted lower directory still there")
    os.mkdir(p("dir"))
    got = os.listdir(p("dir"))
    want(got == [], "recreated directory shows lower entries %r" % got)
    with open(p("dir", "new"), "w") as f:
        f.write("n")
    want(os.listdir(p("dir")) == ["new"], "recreated directory lists %r" % os.listdir(p("dir")))


def rename_file():
    os.rename(p("mvfile"), p("mvfile2"))
    want(not os.path.lexists(p("mvfile")), "old name of a renamed lower file still there")
    want(read(p("mvfile2")) == b"mv\n", "renamed lower file content %r" % read(p("mvfile2")))


def rename_dir():
    # rename(2) of a lower directory: kernel overlayfs without redirect_dir
    # says EXDEV (mv then copies); report what happened.
    try:
        os.rename(p("mvdir"), p("mvdir2"))
        how = "renamed"
        moved = p("mvdir2")
    except OSError as e:
        want(e.errno == errno.EXDEV, "rename(2) of a lower directory: %s" % e)
        how = "EXDEV"
        subprocess.run(["mv", p("mvdir"), p("mvdir2")], check=True)
        moved = p("mvdir2")
    want(not os.path.lexists(p("mvdir")), "old name of a moved lower directory still there")
    want(read(os.path.join(moved, "x")) == b"x\n", "moved directory content")
    want(sorted(os.listdir(moved)) == ["sub", "x"], "moved directory lists %r" % os.listdir(moved))
    return "rename(2)=" + how


def hard_links():
    os.link(p("link"), p("link2"))
    want(os.stat(p("link")).st_nlink == 2, "nlink of a linked lower file %d" % os.stat(p("link")).st_nlink)
    with open(p("link2"), "ab") as f:
        f.write(b"more\n")
    want(read(p("link")) == b"l\nmore\n", "write through one link not seen through the other: %r" % read(p("link")))
    with open(p("newfile"), "w") as f:
        f.write("n")
    os.link(p("newfile"), p("newlink"))
    want(os.stat(p("newlink")).st_nlink == 2, "nlink of a linked new file")
    want(os.stat(p("newfile")).st_ino == os.stat(p("newlink")).st_ino, "links of a new file differ in st_ino")
    # Kernel overlayfs (no index, no xino) keeps a copied-up file's lower
    # st_ino, so its new link shows another; report it.
    same = os.stat(p("link")).st_ino == os.stat(p("link2")).st_ino
    return "lower-file-links-st_ino=" + ("same" if same else "differ")


def ownership():
    os.chmod(p("own"), 0o640)
    os.chown(p("own"), 1000, 1001)
    st = os.stat(p("own"))
    want((st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 1000, 1001),
         "lower file after chmod 640, chown 1000:1001: mode %o uid %d gid %d" % (st.st_mode & 0o7777, st.st_uid, st.st_gid))
    os.mkdir(p("owned"))
    os.chown(p("owned"), 65534, 65534)
    st = os.stat(p("owned"))
    want((st.st_uid, st.st_gid) == (65534, 65534), "new dir chown 65534: %d:%d" % (st.st_uid, st.st_gid))
    # Another uid reaches the mount (FUSE admits only the mounter unless
    # allow_other).
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(1001)
            os.setuid(1000)
            ok = read(p("own")).startswith(b"o") and os.listdir(BASE) != []
            os._exit(0 if ok else 1)
        except Exception:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    want(status == 0, "uid 1000 could not read its file (status %d)" % status)


def xattrs():
    os.setxattr(p("xattr"), "user.test", b"lower-copy")
    with open(p("xnew"), "w") as f:
        f.write("x")
    os.setxattr(p("xnew"), "user.test", b"new")
    want(os.getxattr(p("xattr"), "user.test") == b"lower-copy", "user.test on a copied-up file")
    want(os.getxattr(p("xnew"), "user.test") == b"new", "user.test on a new file")
    names = [n for n in os.listxattr(p("xattr")) if n.startswith("user.")]
    want(names == ["user.test"], "listxattr shows %r (the driver's own xattrs must stay hidden)" % names)
    os.removexattr(p("xattr"), "user.test")
    want("user.test" not in os.listxattr(p("xattr")), "removed xattr still listed")
    d = [n for n in os.listxattr(p("dir")) if n.startswith("user.")]
    want(d == [], "an opaque directory shows xattrs %r" % d)


def mmap_writes():
    for name, fresh in (("mm-new", True), ("mm", False)):
        path = p(name)
        if fresh:
            with open(path, "wb") as f:
                f.write(b"\0" * 8192)
        with open(path, "r+b") as f:
            m = mmap.mmap(f.fileno(), 8192, mmap.MAP_SHARED)
            m[0:5] = b"hello"
            m[8187:8192] = b"world"
            m.close()
        got = read(path)
        want(len(got) == 8192 and got[:5] == b"hello" and got[-5:] == b"world",
             "%s after a shared mapping's write: %r...%r" % (name, got[:5], got[-5:]))


def sparse():
    path = p("sparse")
    size = 3 << 30
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(size - 4)
        f.write(b"end\n")
    st = os.stat(path)
    want(st.st_size == size, "size %d, want %d" % (st.st_size, size))
    want(st.st_blocks * 512 < (1 << 20), "%d bytes allocated for a sparse 3 GiB file" % (st.st_blocks * 512))
    with open(path, "rb") as f:
        f.seek(size - 4)
        want(f.read() == b"end\n", "the end of the sparse file")
        f.seek(1 << 30)
        want(f.read(4) == b"\0\0\0\0", "a hole reads as zeros")
    return "%d bytes allocated" % (st.st_blocks * 512)


def many():
    d = p("many")
    os.mkdir(d)
    t0 = time.monotonic()
    for i in range(MANY):
        with open(os.path.join(d, "f%d" % i), "w") as f:
            f.write(str(i))
    t1 = time.monotonic()
    names = os.listdir(d)
    want(len(names) == MANY, "%d entries listed, want %d" % (len(names), MANY))
    for i in range(MANY):
        fp = os.path.join(d, "f%d" % i)
        want(os.stat(fp).st_size == len(str(i)), "size of f%d" % i)
        want(read(fp) == str(i).encode(), "content of f%d" % i)
    t2 = time.monotonic()
    return "create %.2fs, stat+read %.2fs" % (t1 - t0, t2 - t1)


for name, fn in [("copy-up", copy_up), ("whiteout", whiteout), ("opaque", opaque),
                 ("rename-file", rename_file), ("rename-dir", rename_dir), ("hard-links", hard_links),
                 ("chmod-chown", ownership), ("xattrs", xattrs), ("mmap", mmap_writes),
                 ("sparse", sparse), ("many-files", many)]:
    check(name, fn)
sys.exit(1 if FAILED else 0)
