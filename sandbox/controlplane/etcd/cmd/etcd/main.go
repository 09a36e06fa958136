// Command etcd is a wrapper main around etcd's own entry point, so that the
// real etcd server can be built from its Go module (no binary download).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
