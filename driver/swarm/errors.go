package swarm

import "errors"

// ErrNoSwarm means the engine is not a manager of an active swarm.
var ErrNoSwarm = errors.New("no swarm")
