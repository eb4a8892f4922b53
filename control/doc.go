// Package control is the client side of the commands that act on running
// sandboxes: exec (through the sandbox's exec socket, internal/wire), kill,
// stop, logs, ps (List) and rm, all from the records in package state.
//
// It may import state, journal, internal/wire and internal/ttyrelay; it
// imports parent only to sweep ephemeral directories on rm.
package control
