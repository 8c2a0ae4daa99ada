// libmodelgate_opa: OPA's Go evaluator (github.com/open-policy-agent/opa/v1/rego) as a C shared
// library, loaded in-process by policies/engines/inprocess.py (the `opa-inprocess` engine).
//
// The same evaluator as an OPA server, without the HTTP hop: a bundle is prepared once
// (modules + data, compiled) and every evaluation is cancelled at its deadline through the
// context OPA's evaluator checks between steps. Every call recovers from a Go panic and reports
// it as an error; nothing here keeps a pointer handed in by the caller.
//
// Built by scripts/tools/15-opalib.sh (go build -buildmode=c-shared); go.mod pins OPA.
package main

/*
#include <stdlib.h>
*/
import "C"

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/util"
	"github.com/open-policy-agent/opa/v1/version"
)

// Result codes of mg_prepare / mg_eval (mirrored in inprocess.py).
const (
	codeOK       = 0
	codeError    = 1 // bad bundle, bad input, evaluation error (message in *out)
	codeTimeout  = 2 // the deadline passed: the evaluation was cancelled
	codeNoHandle = 3 // the handle was released or never prepared
	codePanic    = 4 // the evaluator panicked (recovered; message in *out)
)

var (
	mu       sync.RWMutex
	prepared = map[int64]*rego.PreparedEvalQuery{}
	nextID   int64
)

func setOut(out **C.char, outLen *C.int, s string) {
	*out = C.CString(s)
	*outLen = C.int(len(s))
}

func recovered(code *C.int, out **C.char, outLen *C.int) {
	if r := recover(); r != nil {
		setOut(out, outLen, fmt.Sprintf("the OPA evaluator panicked: %v", r))
		*code = codePanic
	}
}

// mg_prepare compiles modules (a JSON object: file name -> Rego source) with data (a JSON
// object) for query. On success *handle is set and codeOK returned; otherwise *out holds the
// message (free it with mg_free).
//
//export mg_prepare
func mg_prepare(modules *C.char, modulesLen C.int, data *C.char, dataLen C.int, query *C.char,
	handle *C.longlong, out **C.char, outLen *C.int) (code C.int) {
	defer recovered(&code, out, outLen)
	var sources map[string]string
	if err := json.Unmarshal(C.GoBytes(unsafe.Pointer(modules), modulesLen), &sources); err != nil {
		setOut(out, outLen, "the modules are not a JSON object of strings: "+err.Error())
		return codeError
	}
	var doc map[string]interface{}
	if err := util.UnmarshalJSON(C.GoBytes(unsafe.Pointer(data), dataLen), &doc); err != nil {
		setOut(out, outLen, "the policy data is not a JSON object: "+err.Error())
		return codeError
	}
	options := []func(*rego.Rego){
		rego.Query(C.GoString(query)),
		rego.Store(inmem.NewFromObject(doc)),
	}
	for name, source := range sources {
		options = append(options, rego.Module(name, source))
	}
	query_, err := rego.New(options...).PrepareForEval(context.Background())
	if err != nil {
		setOut(out, outLen, err.Error())
		return codeError
	}
	mu.Lock()
	nextID++
	id := nextID
	prepared[id] = &query_
	mu.Unlock()
	*handle = C.longlong(id)
	return codeOK
}

// mg_eval evaluates the prepared query handle on input (JSON) within timeoutMicros. On codeOK
// *out holds the JSON value of the query's first expression (`null` when undefined); on any
// other code a message. Free *out with mg_free.
//
//export mg_eval
func mg_eval(handle C.longlong, input *C.char, inputLen C.int, timeoutMicros C.longlong,
	out **C.char, outLen *C.int) (code C.int) {
	defer recovered(&code, out, outLen)
	mu.RLock()
	query := prepared[int64(handle)]
	mu.RUnlock()
	if query == nil {
		setOut(out, outLen, "no prepared policy bundle with this handle")
		return codeNoHandle
	}
	var raw interface{}
	decoder := util.NewJSONDecoder(bytes.NewReader(C.GoBytes(unsafe.Pointer(input), inputLen)))
	if err := decoder.Decode(&raw); err != nil {
		setOut(out, outLen, "the policy input is not JSON: "+err.Error())
		return codeError
	}
	value, err := ast.InterfaceToValue(raw)
	if err != nil {
		setOut(out, outLen, "the policy input cannot be converted: "+err.Error())
		return codeError
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutMicros)*time.Microsecond)
	defer cancel()
	results, err := query.Eval(ctx, rego.EvalParsedInput(value))
	if err != nil {
		var topdownErr *topdown.Error
		if ctx.Err() != nil || (errors.As(err, &topdownErr) && topdownErr.Code == topdown.CancelErr) {
			setOut(out, outLen, "the evaluation was cancelled at its deadline")
			return codeTimeout
		}
		setOut(out, outLen, err.Error())
		return codeError
	}
	var answer interface{}
	if len(results) > 0 && len(results[0].Expressions) > 0 {
		answer = results[0].Expressions[0].Value
	}
	encoded, err := json.Marshal(answer)
	if err != nil {
		setOut(out, outLen, "the answer cannot be encoded as JSON: "+err.Error())
		return codeError
	}
	setOut(out, outLen, string(encoded))
	return codeOK
}

// mg_release forgets a prepared query (an older bundle after a reload).
//
//export mg_release
func mg_release(handle C.longlong) {
	mu.Lock()
	delete(prepared, int64(handle))
	mu.Unlock()
}

// mg_free frees a string this library returned.
//
//export mg_free
func mg_free(p *C.char) { C.free(unsafe.Pointer(p)) }

// mg_version is the OPA release compiled in (a static string: do not free).
//
//export mg_version
func mg_version() *C.char { return versionString }

var versionString = C.CString(version.Version)

func main() {}
