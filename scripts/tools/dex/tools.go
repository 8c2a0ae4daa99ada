//go:build tools

// Package tools pins the Dex command in this build module's go.mod.
package tools

import _ "github.com/dexidp/dex/cmd/dex"
