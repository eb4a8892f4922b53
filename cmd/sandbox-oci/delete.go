package main

import "errors"

type deleteCmd struct{}

func (c *deleteCmd) Run(g *globals) error { return errors.New("delete: not implemented yet") }
