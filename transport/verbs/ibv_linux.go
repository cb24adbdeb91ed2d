//go:build verbs && cgo && linux

package verbs

// This file is the cgo layer over libibverbs, and nothing more: create and
// destroy, register, post, poll. The protocol lives in verbs.go, which the
// fake adapter (fake.go) tests without an adapter.
//
// Invariants of the unsafe code here: C structures are allocated by C or
// on the C side of a helper call, never in Go memory; the only Go pointer
// handed to C is a buffer being registered, which the caller has pinned
// (regCache) and keeps pinned until Deregister; work requests carry
// addresses as integers inside such regions.

/*
#cgo LDFLAGS: -libverbs
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <infiniband/verbs.h>

static int parley_query_port(struct ibv_context *ctx, int port, int *state, int *lid, int *mtu) {
	struct ibv_port_attr a;
	memset(&a, 0, sizeof a);
	int rc = ibv_query_port(ctx, (uint8_t)port, &a);
	if (rc) return rc;
	*state = a.state;
	*lid = a.lid;
	*mtu = 128 << a.active_mtu;
	return 0;
}

static struct ibv_mr *parley_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access) {
	return ibv_reg_mr(pd, addr, len, access);
}

static struct ibv_qp *parley_create_qp(struct ibv_pd *pd, struct ibv_cq *cq, int sendDepth, int recvDepth) {
	struct ibv_qp_init_attr a;
	memset(&a, 0, sizeof a);
	a.send_cq = cq;
	a.recv_cq = cq;
	a.qp_type = IBV_QPT_RC;
	a.sq_sig_all = 1;
	a.cap.max_send_wr = sendDepth;
	a.cap.max_recv_wr = recvDepth;
	a.cap.max_send_sge = 1;
	a.cap.max_recv_sge = 1;
	return ibv_create_qp(pd, &a);
}

// parley_connect moves qp from RESET to RTS, talking to the remote queue
// pair: INIT (port, remote read allowed), RTR (path, remote QPN and PSN),
// RTS (timeouts, own PSN). No RNR retries: the transport's credits make a
// missing receive a bug, reported rather than retried.
static int parley_connect(struct ibv_qp *qp, int port, int mtu, int lid, uint8_t *gid, int useGID,
		uint32_t rqpn, uint32_t rpsn, uint32_t psn) {
	struct ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_state = IBV_QPS_INIT;
	a.pkey_index = 0;
	a.port_num = port;
	a.qp_access_flags = IBV_ACCESS_REMOTE_READ | IBV_ACCESS_LOCAL_WRITE;
	int rc = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
	if (rc) return rc;

	memset(&a, 0, sizeof a);
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = mtu;
	a.dest_qp_num = rqpn;
	a.rq_psn = rpsn;
	a.max_dest_rd_atomic = 16;
	a.min_rnr_timer = 12;
	a.ah_attr.dlid = lid;
	a.ah_attr.port_num = port;
	if (useGID) {
		a.ah_attr.is_global = 1;
		memcpy(a.ah_attr.grh.dgid.raw, gid, 16);
		a.ah_attr.grh.hop_limit = 64;
		a.ah_attr.grh.sgid_index = 0;
	}
	rc = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
		IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
	if (rc) return rc;

	memset(&a, 0, sizeof a);
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 0;
	a.sq_psn = psn;
	a.max_rd_atomic = 16;
	return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
		IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

static int parley_post_send(struct ibv_qp *qp, uint64_t id, int read, uint64_t addr, uint32_t len, uint32_t lkey,
		uint64_t raddr, uint32_t rkey) {
	struct ibv_sge sge = { .addr = addr, .length = len, .lkey = lkey };
	struct ibv_send_wr wr, *bad;
	memset(&wr, 0, sizeof wr);
	wr.wr_id = id;
	wr.sg_list = &sge;
	wr.num_sge = len ? 1 : 0;
	wr.opcode = read ? IBV_WR_RDMA_READ : IBV_WR_SEND;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	return ibv_post_send(qp, &wr, &bad);
}

static int parley_post_recv(struct ibv_qp *qp, uint64_t id, uint64_t addr, uint32_t len, uint32_t lkey) {
	struct ibv_sge sge = { .addr = addr, .length = len, .lkey = lkey };
	struct ibv_recv_wr wr, *bad;
	memset(&wr, 0, sizeof wr);
	wr.wr_id = id;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	return ibv_post_recv(qp, &wr, &bad);
}

// parley_poll polls up to n completions into C arrays the caller made.
static int parley_poll(struct ibv_cq *cq, int n, struct ibv_wc *wc) { return ibv_poll_cq(cq, n, wc); }
static int parley_req_notify(struct ibv_cq *cq) { return ibv_req_notify_cq(cq, 0); }

static uint64_t wc_id(struct ibv_wc *wc, int i) { return wc[i].wr_id; }
static int wc_status(struct ibv_wc *wc, int i) { return wc[i].status; }
static int wc_opcode(struct ibv_wc *wc, int i) { return wc[i].opcode; }
static uint32_t wc_len(struct ibv_wc *wc, int i) { return wc[i].byte_len; }

static struct ibv_cq *parley_get_event(struct ibv_comp_channel *ch) {
	struct ibv_cq *cq;
	void *ctx;
	if (ibv_get_cq_event(ch, &cq, &ctx)) return NULL;
	ibv_ack_cq_events(cq, 1);
	return cq;
}
*/
import "C"

import (
	"fmt"
	"sync"
	"syscall"
	"unsafe"
)

// Built reports whether this binary has the libibverbs layer.
const Built = true

type ibvDevice struct {
	name string
	ctx  *C.struct_ibv_context
	pd   *C.struct_ibv_pd
	ch   *C.struct_ibv_comp_channel
	port PortAttr
	perr error

	mu    sync.Mutex
	wakes map[*C.struct_ibv_cq]func()
	psn   uint32
}

// Open opens the RDMA adapter called name (the first one if name is ""),
// with libibverbs. Without one it fails with ErrNoDevice, naming what
// was looked for; with every port down, with ErrPortDown.
func Open(name string) (Device, error) {
	var n C.int
	list, errno := C.ibv_get_device_list(&n)
	if list == nil {
		return nil, fmt.Errorf("%w: ibv_get_device_list: %v (no adapter, or no kernel driver: ib_uverbs, rdma_rxe)", ErrNoDevice, errno)
	}
	defer C.ibv_free_device_list(list)
	devs := unsafe.Slice(list, int(n))
	var pick *C.struct_ibv_device
	var names []string
	for _, d := range devs {
		dn := C.GoString(C.ibv_get_device_name(d))
		names = append(names, dn)
		if pick == nil && (name == "" || name == dn) {
			pick = d
		}
	}
	if pick == nil {
		if len(names) == 0 {
			return nil, fmt.Errorf("%w: libibverbs found no adapter (ibv_devinfo lists none)", ErrNoDevice)
		}
		return nil, fmt.Errorf("%w: no adapter named %q (there are %v)", ErrNoDevice, name, names)
	}
	d := &ibvDevice{name: C.GoString(C.ibv_get_device_name(pick)), wakes: make(map[*C.struct_ibv_cq]func())}
	ctx, errno := C.ibv_open_device(pick)
	if ctx == nil {
		return nil, fmt.Errorf("%s: ibv_open_device: %v", d.name, errno)
	}
	d.ctx = ctx
	if d.pd, errno = C.ibv_alloc_pd(ctx); d.pd == nil {
		C.ibv_close_device(ctx)
		return nil, fmt.Errorf("%s: ibv_alloc_pd: %v", d.name, errno)
	}
	if d.ch, errno = C.ibv_create_comp_channel(ctx); d.ch == nil {
		C.ibv_dealloc_pd(d.pd)
		C.ibv_close_device(ctx)
		return nil, fmt.Errorf("%s: ibv_create_comp_channel: %v", d.name, errno)
	}
	d.port, d.perr = d.findPort()
	d.psn = uint32(syscall.Getpid()) & 0xffff
	go d.events()
	return d, nil
}

func (d *ibvDevice) findPort() (PortAttr, error) {
	var attr C.struct_ibv_device_attr
	if rc := C.ibv_query_device(d.ctx, &attr); rc != 0 {
		return PortAttr{}, fmt.Errorf("ibv_query_device: %v", syscall.Errno(rc))
	}
	var states []string
	for port := 1; port <= int(attr.phys_port_cnt); port++ {
		var state, lid, mtu C.int
		if rc := C.parley_query_port(d.ctx, C.int(port), &state, &lid, &mtu); rc != 0 {
			return PortAttr{}, fmt.Errorf("ibv_query_port %d: %v", port, syscall.Errno(rc))
		}
		if state != C.IBV_PORT_ACTIVE {
			states = append(states, fmt.Sprintf("port %d state %d", port, int(state)))
			continue
		}
		p := PortAttr{Num: port, LID: uint16(lid), MTU: int(mtu)}
		var gid C.union_ibv_gid
		if C.ibv_query_gid(d.ctx, C.uint8_t(port), 0, &gid) == 0 {
			copy(p.GID[:], C.GoBytes(unsafe.Pointer(&gid), 16))
		}
		return p, nil
	}
	return PortAttr{}, fmt.Errorf("%w (%v)", ErrPortDown, states)
}

// events turns completion-channel events into the CQs' wake calls. It
// blocks in ibv_get_cq_event, one thread for the device.
func (d *ibvDevice) events() {
	for {
		cq := C.parley_get_event(d.ch)
		if cq == nil {
			return
		}
		d.mu.Lock()
		w := d.wakes[cq]
		d.mu.Unlock()
		if w != nil {
			w()
		}
	}
}

func (d *ibvDevice) Name() string { return d.name }

func (d *ibvDevice) Port() (PortAttr, error) { return d.port, d.perr }

func (d *ibvDevice) Register(buf []byte, access Access) (*MR, error) {
	if len(buf) == 0 {
		return nil, fmt.Errorf("%s: register: empty buffer", d.name)
	}
	flags := C.int(0)
	if access&LocalWrite != 0 {
		flags |= C.IBV_ACCESS_LOCAL_WRITE
	}
	if access&RemoteRead != 0 {
		flags |= C.IBV_ACCESS_REMOTE_READ
	}
	// The caller pinned buf (regCache): the adapter keeps using it.
	mr, errno := C.parley_reg_mr(d.pd, unsafe.Pointer(unsafe.SliceData(buf)), C.size_t(len(buf)), flags)
	if mr == nil {
		return nil, fmt.Errorf("%s: ibv_reg_mr of %d bytes: %v (is the locked-memory limit, ulimit -l, too low?)", d.name, len(buf), errno)
	}
	return &MR{Addr: addrOf(buf), Len: len(buf), LKey: uint32(mr.lkey), RKey: uint32(mr.rkey), Access: access, handle: mr}, nil
}

func (d *ibvDevice) Deregister(mr *MR) error {
	if rc := C.ibv_dereg_mr(mr.handle.(*C.struct_ibv_mr)); rc != 0 {
		return fmt.Errorf("%s: ibv_dereg_mr: %v", d.name, syscall.Errno(rc))
	}
	return nil
}

type ibvCQ struct {
	d   *ibvDevice
	cq  *C.struct_ibv_cq
	wcs *C.struct_ibv_wc
	n   int
}

func (d *ibvDevice) NewCQ(depth int, wake func()) (CQ, error) {
	cq, errno := C.ibv_create_cq(d.ctx, C.int(depth), nil, d.ch, 0)
	if cq == nil {
		return nil, fmt.Errorf("%s: ibv_create_cq of %d entries: %v", d.name, depth, errno)
	}
	const batch = 64
	c := &ibvCQ{d: d, cq: cq, n: batch, wcs: (*C.struct_ibv_wc)(C.calloc(batch, C.size_t(unsafe.Sizeof(C.struct_ibv_wc{}))))}
	d.mu.Lock()
	d.wakes[cq] = wake
	d.mu.Unlock()
	return c, nil
}

var ibvStatus = map[C.enum_ibv_wc_status]Status{
	C.IBV_WC_SUCCESS: Success, C.IBV_WC_LOC_LEN_ERR: LocalLenErr, C.IBV_WC_LOC_PROT_ERR: LocalProtErr,
	C.IBV_WC_WR_FLUSH_ERR: WRFlushErr, C.IBV_WC_REM_ACCESS_ERR: RemoteAccessErr, C.IBV_WC_REM_INV_REQ_ERR: RemoteInvReqErr,
	C.IBV_WC_RETRY_EXC_ERR: RetryExceeded, C.IBV_WC_RNR_RETRY_EXC_ERR: RNRRetryExceeded,
}

func (c *ibvCQ) Poll(wcs []WC) (int, error) {
	k := C.parley_poll(c.cq, C.int(min(len(wcs), c.n)), c.wcs)
	if k < 0 {
		return 0, fmt.Errorf("%s: ibv_poll_cq: %w", c.d.name, ErrCQOverflow)
	}
	for i := range int(k) {
		st, ok := ibvStatus[C.enum_ibv_wc_status(C.wc_status(c.wcs, C.int(i)))]
		if !ok {
			st = Status(100 + int(C.wc_status(c.wcs, C.int(i))))
		}
		op := OpSend
		switch C.wc_opcode(c.wcs, C.int(i)) {
		case C.IBV_WC_RECV:
			op = OpRecv
		case C.IBV_WC_RDMA_READ:
			op = OpRead
		}
		wcs[i] = WC{ID: uint64(C.wc_id(c.wcs, C.int(i))), Status: st, Op: op, Len: int(C.wc_len(c.wcs, C.int(i)))}
	}
	return int(k), nil
}

func (c *ibvCQ) Arm() error {
	if rc := C.parley_req_notify(c.cq); rc != 0 {
		return fmt.Errorf("%s: ibv_req_notify_cq: %v", c.d.name, syscall.Errno(rc))
	}
	return nil
}

func (c *ibvCQ) Close() error {
	c.d.mu.Lock()
	delete(c.d.wakes, c.cq)
	c.d.mu.Unlock()
	rc := C.ibv_destroy_cq(c.cq)
	C.free(unsafe.Pointer(c.wcs))
	if rc != 0 {
		return fmt.Errorf("%s: ibv_destroy_cq: %v", c.d.name, syscall.Errno(rc))
	}
	return nil
}

type ibvQP struct {
	d   *ibvDevice
	qp  *C.struct_ibv_qp
	psn uint32

	mu        sync.Mutex
	connected bool
	remote    Endpoint
}

func (d *ibvDevice) NewQP(cq CQ, caps QPCaps) (QP, error) {
	icq, ok := cq.(*ibvCQ)
	if !ok {
		return nil, fmt.Errorf("%s: create queue pair: not this device's completion queue", d.name)
	}
	qp, errno := C.parley_create_qp(d.pd, icq.cq, C.int(caps.SendDepth), C.int(caps.RecvDepth))
	if qp == nil {
		return nil, fmt.Errorf("%s: ibv_create_qp: %v", d.name, errno)
	}
	d.mu.Lock()
	d.psn = (d.psn*1103515245 + 12345) & 0xffffff
	psn := d.psn
	d.mu.Unlock()
	return &ibvQP{d: d, qp: qp, psn: psn}, nil
}

func (q *ibvQP) Local() Endpoint { return Endpoint{QPN: uint32(q.qp.qp_num), PSN: q.psn} }

func (q *ibvQP) Connect(remote Endpoint) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.connected {
		if q.remote == remote {
			return nil
		}
		return fmt.Errorf("%s: queue pair %d is connected to %d, not %d", q.d.name, q.qp.qp_num, q.remote.QPN, remote.QPN)
	}
	mtu := C.IBV_MTU_1024
	switch {
	case q.d.port.MTU >= 4096:
		mtu = C.IBV_MTU_4096
	case q.d.port.MTU >= 2048:
		mtu = C.IBV_MTU_2048
	}
	useGID := 0
	if remote.LID == 0 { // RoCE: addressed by GID
		useGID = 1
	}
	gid := C.CBytes(remote.GID[:])
	defer C.free(gid)
	rc := C.parley_connect(q.qp, C.int(q.d.port.Num), C.int(mtu), C.int(remote.LID), (*C.uint8_t)(gid), C.int(useGID),
		C.uint32_t(remote.QPN), C.uint32_t(remote.PSN), C.uint32_t(q.psn))
	if rc != 0 {
		return fmt.Errorf("%s: connect queue pair %d to %d: ibv_modify_qp: %v", q.d.name, q.qp.qp_num, remote.QPN, syscall.Errno(rc))
	}
	q.connected, q.remote = true, remote
	return nil
}

func (q *ibvQP) PostSend(wr SendWR) error {
	read := C.int(0)
	if wr.Op == OpRead {
		read = 1
	}
	if rc := C.parley_post_send(q.qp, C.uint64_t(wr.ID), read, C.uint64_t(wr.Addr), C.uint32_t(wr.Len), C.uint32_t(wr.LKey),
		C.uint64_t(wr.RemoteAddr), C.uint32_t(wr.RKey)); rc != 0 {
		return fmt.Errorf("%s: ibv_post_send: %v", q.d.name, syscall.Errno(rc))
	}
	return nil
}

func (q *ibvQP) PostRecv(wr RecvWR) error {
	if rc := C.parley_post_recv(q.qp, C.uint64_t(wr.ID), C.uint64_t(wr.Addr), C.uint32_t(wr.Len), C.uint32_t(wr.LKey)); rc != 0 {
		return fmt.Errorf("%s: ibv_post_recv: %v", q.d.name, syscall.Errno(rc))
	}
	return nil
}

func (q *ibvQP) Close() error {
	if rc := C.ibv_destroy_qp(q.qp); rc != 0 {
		return fmt.Errorf("%s: ibv_destroy_qp: %v", q.d.name, syscall.Errno(rc))
	}
	return nil
}

// Close releases the adapter. The event thread ends when the completion
// channel goes.
func (d *ibvDevice) Close() error {
	C.ibv_destroy_comp_channel(d.ch)
	C.ibv_dealloc_pd(d.pd)
	if rc := C.ibv_close_device(d.ctx); rc != 0 {
		return fmt.Errorf("%s: ibv_close_device: %v", d.name, syscall.Errno(rc))
	}
	return nil
}
