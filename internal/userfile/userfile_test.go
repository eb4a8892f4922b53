package userfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("hello"), 0o644)
	if b, err := Read(small, 5); err != nil || string(b) != "hello" {
		t.Fatalf("Read(small, 5) = %q, %v", b, err)
	}
	if _, err := Read(small, 4); err == nil || !strings.Contains(err.Error(), "over the limit of 4 bytes") {
		t.Errorf("a file over the limit: want refused, got %v", err)
	}
	huge := filepath.Join(dir, "huge")
	f, _ := os.Create(huge)
	f.Truncate(1 << 40) // sparse: 1 TiB, never read
	f.Close()
	if _, err := Read(huge, MaxConfig); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("a 1 TiB file: want refused by its size, got %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, kind string }{
		{"/dev/zero", "character device"}, {fifo, "FIFO"}, {dir, "directory"},
	} {
		done := make(chan error, 1)
		go func() { _, err := Read(c.path, MaxConfig); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), c.kind) {
				t.Errorf("Read(%s): want refused as a %s, got %v", c.path, c.kind, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Read(%s) did not return within 5 s", c.path)
		}
	}
	if _, err := Read(filepath.Join(dir, "none"), MaxConfig); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: want ENOENT, got %v", err)
	}
}

// ReadNoFollow refuses a symlink (ELOOP), even to a regular file, and
// reads a regular file as Read does.
func TestReadNoFollow(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("kernel\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(f, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadNoFollow(f, 64); err != nil || string(b) != "kernel\n" {
		t.Errorf("ReadNoFollow(file) = %q, %v", b, err)
	}
	if _, err := ReadNoFollow(filepath.Join(dir, "link"), 64); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("ReadNoFollow(symlink) = %v, want ELOOP", err)
	}
	if b, err := Read(filepath.Join(dir, "link"), 64); err != nil || string(b) != "kernel\n" {
		t.Errorf("Read(symlink) = %q, %v: Read follows it", b, err)
	}
}
