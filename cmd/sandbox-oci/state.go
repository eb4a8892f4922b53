package main

import (
	"encoding/json"
	"fmt"
	"os"
)

type stateCmd struct {
	ID string `arg:"" help:"Container id."`
}

func (c *stateCmd) Run(g *globals) error {
	ct, err := g.container(c.ID)
	if err != nil {
		return err
	}
	st, err := ct.State()
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(os.Stdout, "%s\n", data)
	return err
}
