package main

import "errors"

type createCmd struct{}

func (c *createCmd) Run(g *globals) error { return errors.New("create: not implemented yet") }
