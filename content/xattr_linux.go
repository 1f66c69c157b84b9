package content

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// XattrCalls list and get the extended attributes of one file: by its
// fd (FdXattrs), or by a path whose last element is not followed
// (PathXattrs).
type XattrCalls struct {
	list func(dest []byte) (int, error)
	get  func(name string, dest []byte) (int, error)
}

// FdXattrs reads through an open file descriptor.
func FdXattrs(fd int) XattrCalls {
	return XattrCalls{
		list: func(dest []byte) (int, error) { return unix.Flistxattr(fd, dest) },
		get:  func(name string, dest []byte) (int, error) { return unix.Fgetxattr(fd, name, dest) },
	}
}

// PathXattrs reads by path, without following its last element.
func PathXattrs(p string) XattrCalls {
	return XattrCalls{
		list: func(dest []byte) (int, error) { return unix.Llistxattr(p, dest) },
		get:  func(name string, dest []byte) (int, error) { return unix.Lgetxattr(p, name, dest) },
	}
}

// xattrTries bounds the retries of a list or get whose size changed
// between asking for it and reading.
const xattrTries = 4

// ReadXattrs returns the extended attributes that are kept (see
// XattrCarried), nil if none, refusing more than lim.Xattrs of them or a
// value above lim.XattrBytes before reading it. A file system without
// extended attributes has none.
func ReadXattrs(x XattrCalls, lim Limits) (Xattrs, error) {
	names, err := listXattrs(x)
	if err != nil {
		return nil, err
	}
	var out Xattrs
	for _, name := range names {
		if !XattrCarried(name) {
			continue
		}
		if err := ValidateXattr(name, 0, lim); err != nil {
			return nil, err
		}
		if len(out) == lim.Xattrs {
			return nil, fmt.Errorf("more than %d extended attributes", lim.Xattrs)
		}
		v, ok, err := getXattr(x, name, lim)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // removed meanwhile
		}
		if out == nil {
			out = Xattrs{}
		}
		out[name] = v
	}
	return out, nil
}

// listXattrs returns the names of all extended attributes, sorted.
func listXattrs(x XattrCalls) ([]string, error) {
	for range xattrTries {
		n, err := x.list(nil)
		if err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list extended attributes: %w", err)
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		n, err = x.list(buf)
		if err == unix.ERANGE {
			continue // more names meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list extended attributes: %w", err)
		}
		var names []string
		for _, b := range bytes.Split(buf[:n], []byte{0}) {
			if len(b) > 0 {
				names = append(names, string(b))
			}
		}
		sort.Strings(names)
		return names, nil
	}
	return nil, errors.New("list extended attributes: they keep changing")
}

// getXattr reads one extended attribute; ok is false if it is gone.
func getXattr(x XattrCalls, name string, lim Limits) (v []byte, ok bool, err error) {
	for range xattrTries {
		n, err := x.get(name, nil)
		if err == unix.ENODATA {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("extended attribute %s: %w", name, err)
		}
		if err := ValidateXattr(name, n, lim); err != nil {
			return nil, false, err
		}
		buf := make([]byte, n)
		n, err = x.get(name, buf)
		switch {
		case err == unix.ERANGE:
			continue // grew meanwhile
		case err == unix.ENODATA:
			return nil, false, nil
		case err != nil:
			return nil, false, fmt.Errorf("extended attribute %s: %w", name, err)
		}
		return buf[:n], true, nil
	}
	return nil, false, fmt.Errorf("extended attribute %s keeps changing", name)
}
