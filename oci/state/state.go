// Package state keeps the containers' records under the runtime's --root:
// one directory per container id, its record, its lock, and the OCI state
// document (`state`).
package state
