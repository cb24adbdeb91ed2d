//go:build pmix && cgo

package pmix

/*
#cgo pkg-config: pmix
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <pmix.h>

// The C side only copies between PMIx's types and plain C ones; every
// pmix_value_t PMIx returns is released here, and every string handed to
// Go is a malloc'd copy that Go frees.

static pmix_status_t parley_init(pmix_proc_t *me) { return PMIx_Init(me, NULL, 0); }

static pmix_status_t parley_get_uint(const pmix_proc_t *me, uint32_t rank, const char *key, uint32_t *out) {
	pmix_proc_t p;
	PMIX_PROC_CONSTRUCT(&p);
	PMIX_LOAD_PROCID(&p, me->nspace, rank);
	pmix_value_t *val = NULL;
	pmix_status_t rc = PMIx_Get(&p, key, NULL, 0, &val);
	if (rc != PMIX_SUCCESS) return rc;
	switch (val->type) {
	case PMIX_UINT32: *out = val->data.uint32; break;
	case PMIX_UINT16: *out = val->data.uint16; break;
	case PMIX_UINT64: *out = (uint32_t)val->data.uint64; break;
	case PMIX_INT: *out = (uint32_t)val->data.integer; break;
	default: rc = PMIX_ERR_BAD_PARAM;
	}
	PMIX_VALUE_RELEASE(val);
	return rc;
}

static pmix_status_t parley_put(const char *key, const char *value) {
	pmix_value_t v;
	PMIX_VALUE_CONSTRUCT(&v);
	v.type = PMIX_STRING;
	v.data.string = (char *)value;
	// PMIx_Put copies the value; v is not destructed, so that the string,
	// owned by Go's caller, is not freed here.
	return PMIx_Put(PMIX_GLOBAL, key, &v);
}

static pmix_status_t parley_commit(void) { return PMIx_Commit(); }

static pmix_status_t parley_fence(const pmix_proc_t *me) {
	pmix_proc_t all;
	PMIX_PROC_CONSTRUCT(&all);
	PMIX_LOAD_PROCID(&all, me->nspace, PMIX_RANK_WILDCARD);
	pmix_info_t info;
	bool collect = true;
	PMIX_INFO_CONSTRUCT(&info);
	PMIX_INFO_LOAD(&info, PMIX_COLLECT_DATA, &collect, PMIX_BOOL);
	pmix_status_t rc = PMIx_Fence(&all, 1, &info, 1);
	PMIX_INFO_DESTRUCT(&info);
	return rc;
}

static pmix_status_t parley_get_string(const pmix_proc_t *me, uint32_t rank, const char *key, char **out) {
	pmix_proc_t p;
	PMIX_PROC_CONSTRUCT(&p);
	PMIX_LOAD_PROCID(&p, me->nspace, rank);
	pmix_value_t *val = NULL;
	pmix_status_t rc = PMIx_Get(&p, key, NULL, 0, &val);
	if (rc != PMIX_SUCCESS) return rc;
	if (val->type == PMIX_STRING && val->data.string != NULL) {
		*out = strdup(val->data.string);
	} else {
		rc = PMIX_ERR_BAD_PARAM;
	}
	PMIX_VALUE_RELEASE(val);
	return rc;
}

static pmix_status_t parley_abort(int code, const char *msg) { return PMIx_Abort(code, msg, NULL, 0); }
static pmix_status_t parley_finalize(void) { return PMIx_Finalize(NULL, 0); }
static uint32_t parley_rank(const pmix_proc_t *me) { return me->rank; }
static const char *parley_nspace(const pmix_proc_t *me) { return me->nspace; }
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// Client is this process's PMIx session; there is at most one per
// process (PMIx_Init is process-wide). Its methods are safe for
// concurrent use.
type Client struct {
	mu        sync.Mutex
	me        C.pmix_proc_t
	Namespace string
	Rank      int
	Size      int
	LocalRank int // -1 when the server does not say
	LocalSize int
}

// ErrNotFound: the key was not published.
var ErrNotFound = errors.New("key not found")

func status(what string, rc C.pmix_status_t) error {
	if rc == C.PMIX_SUCCESS {
		return nil
	}
	return fmt.Errorf("pmix %s: %s (%d)", what, C.GoString(C.PMIx_Error_string(rc)), int(rc))
}

// Init connects to the PMIx server that started this process.
func Init() (*Client, error) {
	c := &Client{LocalRank: -1}
	if err := status("init", C.parley_init(&c.me)); err != nil {
		return nil, err
	}
	c.Namespace = C.GoString(C.parley_nspace(&c.me))
	c.Rank = int(C.parley_rank(&c.me))
	get := func(key string) (int, error) {
		k := C.CString(key)
		defer C.free(unsafe.Pointer(k))
		var v C.uint32_t
		if err := status("get "+key, C.parley_get_uint(&c.me, C.PMIX_RANK_WILDCARD, k, &v)); err != nil {
			return 0, err
		}
		return int(v), nil
	}
	size, err := get("pmix.job.size")
	if err != nil {
		C.parley_finalize()
		return nil, err
	}
	c.Size = size
	// Local rank is a property of this process, local size of the job on
	// this node.
	lk := C.CString("pmix.lrank")
	defer C.free(unsafe.Pointer(lk))
	var lr C.uint32_t
	if C.parley_get_uint(&c.me, C.uint32_t(c.Rank), lk, &lr) == C.PMIX_SUCCESS {
		if ls, err := get("pmix.local.size"); err == nil && int(lr) < ls {
			c.LocalRank, c.LocalSize = int(lr), ls
		}
	}
	return c, nil
}

// Put publishes a key (globally) for the next Fence.
func (c *Client) Put(key, value string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, v := C.CString(key), C.CString(value)
	defer C.free(unsafe.Pointer(k))
	defer C.free(unsafe.Pointer(v))
	return status("put "+key, C.parley_put(k, v))
}

// Fence commits this process's keys and waits for every process of the
// namespace, collecting everybody's data.
func (c *Client) Fence() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := status("commit", C.parley_commit()); err != nil {
		return err
	}
	return status("fence", C.parley_fence(&c.me))
}

// Get returns a key published before the last Fence. PMIx looks a key up
// in the process that put it, and parley's keys say which: one that ends
// in a number after '/' or '-' ("card/3", "parley/node-3") is that rank's,
// any other rank 0's. (Asking every process, PMIX_RANK_UNDEF, timed out
// under Open MPI 4.1's PMIx 4.2.)
func (c *Client) Get(key string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := C.CString(key)
	defer C.free(unsafe.Pointer(k))
	var out *C.char
	rc := C.parley_get_string(&c.me, C.uint32_t(Owner(key)), k, &out)
	if rc == C.PMIX_ERR_NOT_FOUND {
		return "", fmt.Errorf("pmix get %s: %w", key, ErrNotFound)
	}
	if err := status("get "+key, rc); err != nil {
		return "", err
	}
	defer C.free(unsafe.Pointer(out))
	return C.GoString(out), nil
}

// Abort asks the server to end the job.
func (c *Client) Abort(code int, msg string) error {
	m := C.CString(msg)
	defer C.free(unsafe.Pointer(m))
	return status("abort", C.parley_abort(C.int(code), m))
}

// Finalize ends the session.
func (c *Client) Finalize() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return status("finalize", C.parley_finalize())
}
