package tokenizer

import "unsafe"

// stringAddr is the address of a string's bytes.
func stringAddr(s string) uintptr { return uintptr(unsafe.Pointer(unsafe.StringData(s))) }
