/*
 * The C reference of parley's bench: the same benchmarks with the same
 * method (OSU micro-benchmarks), over the MPI C API, writing the same JSON
 * (schema parley-bench/1, see BENCHMARKS.md). bench compare builds it with
 * an installed MPI's mpicc and runs it beside parley.
 *
 *   mpirun -np 2 ./osu latency [-m MIN:MAX] [-i N] [-x N] [-W N] [-c]
 *          [--transport T] [--json FILE] [--impl NAME] [--smoke] [--quiet]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#define LARGE 8192

static struct {
    const char *bench, *transport, *json, *impl;
    long min, max;
    int iters, warmup, window, validate, smoke;
} o = {0, "auto", 0, "mpi", 0, 4 << 20, 0, -1, 64, 0, 0};

static int rank, size;

typedef struct { long size; double value, min, max, rate; int iters; } point;
static point results[64];
static int nresults;

static long parse_size(const char *s) {
    char *end;
    long n = strtol(s, &end, 10);
    if (*end == 'K' || *end == 'k') n <<= 10;
    else if (*end == 'M') n <<= 20;
    else if (*end == 'G') n <<= 30;
    return n;
}

static void counts(long sz, const char *kind, int *iters, int *warm) {
    int large = sz > LARGE;
    if (!strcmp(kind, "bandwidth")) { *iters = large ? 20 : 100; *warm = large ? 2 : 10; }
    else if (!strcmp(kind, "collective")) { *iters = large ? 100 : 1000; *warm = large ? 10 : 100; }
    else { *iters = large ? 1000 : 10000; *warm = large ? 100 : 1000; }
    if (o.iters > 0) *iters = o.iters;
    if (o.warmup >= 0) *warm = o.warmup;
    static int warmed;
    if (o.smoke) { *iters = 2; *warm = 1; }
    else if (!warmed && o.warmup < 0) { *warm *= 10; } /* the first size warms the process up, as bench does */
    warmed = 1;
}

static void fill(char *b, long n, int seed) { for (long i = 0; i < n; i++) b[i] = (char)(i * 7 + seed); }
static void check(const char *b, long n, int seed) {
    for (long i = 0; i < n; i++)
        if (b[i] != (char)(i * 7 + seed)) { fprintf(stderr, "osu: validation failed at byte %ld\n", i); MPI_Abort(MPI_COMM_WORLD, 1); }
}

static void add(long sz, double v, double mn, double mx, double rate, int iters) {
    if (rank == 0 && nresults < 64) results[nresults++] = (point){sz, v, mn, mx, rate, iters};
}

/* sizes: 0 (if min is 0), then powers of two from min to max */
#define FOR_SIZES(sz, lo) for (long sz = (o.min > (lo) ? o.min : (lo)) == 0 ? 0 : 1; sz <= o.max; sz = sz ? sz * 2 : 1) \
    if (sz == 0 || sz >= (o.min > (lo) ? o.min : (lo)))

static void latency(void) {
    char *s = malloc(o.max + 1), *r = malloc(o.max + 1);
    FOR_SIZES(sz, 0) {
        int iters, warm; counts(sz, "latency", &iters, &warm);
        fill(s, sz, (int)sz);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = 0;
        if (rank < 2) {
            int peer = 1 - rank;
            for (int i = 0; i < iters + warm; i++) {
                if (i == warm) t0 = MPI_Wtime();
                if (rank == 0) { MPI_Send(s, sz, MPI_CHAR, peer, 1, MPI_COMM_WORLD); MPI_Recv(r, sz, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE); }
                else { MPI_Recv(r, sz, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE); MPI_Send(s, sz, MPI_CHAR, peer, 1, MPI_COMM_WORLD); }
                if (o.validate) check(r, sz, (int)sz);
            }
        }
        double t = (MPI_Wtime() - t0) * 1e6;
        add(sz, t / (2.0 * iters), 0, 0, 0, iters);
    }
    free(s); free(r);
}

/* Windows are persistent requests started with MPI_Startall, as bench's
 * are (a parley request is the program's until it drops it, so repeating
 * a window without allocating takes persistent requests): both sides
 * measure the same calls. OSU's own benchmarks post MPI_Isend/MPI_Irecv. */
static void window_init(MPI_Request *reqs, int send, char *buf, long sz, int peer) {
    for (int k = 0; k < o.window; k++) {
        if (send) MPI_Send_init(buf, sz, MPI_CHAR, peer, 1, MPI_COMM_WORLD, &reqs[k]);
        else MPI_Recv_init(buf, sz, MPI_CHAR, peer, 1, MPI_COMM_WORLD, &reqs[k]);
    }
}

static void window_free(MPI_Request *reqs, int n) {
    for (int k = 0; k < n; k++) MPI_Request_free(&reqs[k]);
}

static double stream(int peer, int sender, long sz, int iters, int warm, char *buf, MPI_Request *reqs) {
    char ack[4];
    double t0 = 0;
    window_init(reqs, sender, buf, sz, peer);
    for (int i = 0; i < iters + warm; i++) {
        if (i == warm) t0 = MPI_Wtime();
        MPI_Startall(o.window, reqs);
        MPI_Waitall(o.window, reqs, MPI_STATUSES_IGNORE);
        if (sender) {
            MPI_Recv(ack, 4, MPI_CHAR, peer, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            if (o.validate) check(buf, sz, (int)sz);
            MPI_Send(ack, 4, MPI_CHAR, peer, 2, MPI_COMM_WORLD);
        }
    }
    double t = (MPI_Wtime() - t0) * 1e6;
    window_free(reqs, o.window);
    return t;
}

static void bw(int bi) {
    char *s = malloc(o.max + 1), *r = malloc(o.max + 1);
    MPI_Request *reqs = malloc(sizeof(MPI_Request) * 2 * o.window);
    FOR_SIZES(sz, 1) {
        int iters, warm; counts(sz, "bandwidth", &iters, &warm);
        fill(s, sz, (int)sz);
        MPI_Barrier(MPI_COMM_WORLD);
        double t = 0;
        if (rank < 2) {
            int peer = 1 - rank;
            if (!bi) {
                t = stream(peer, rank == 0, sz, iters, warm, rank == 0 ? s : r, reqs);
            } else {
                double t0 = 0;
                window_init(reqs, 0, r, sz, peer);
                window_init(reqs + o.window, 1, s, sz, peer);
                for (int i = 0; i < iters + warm; i++) {
                    if (i == warm) t0 = MPI_Wtime();
                    MPI_Startall(2 * o.window, reqs);
                    MPI_Waitall(2 * o.window, reqs, MPI_STATUSES_IGNORE);
                    if (o.validate) check(r, sz, (int)sz);
                }
                t = (MPI_Wtime() - t0) * 1e6;
                window_free(reqs, 2 * o.window);
            }
        }
        add(sz, (bi ? 2.0 : 1.0) * sz * o.window * iters / t, 0, 0, 0, iters);
    }
    free(s); free(r); free(reqs);
}

static void mbw_mr(void) {
    char *buf = malloc(o.max + 1);
    MPI_Request *reqs = malloc(sizeof(MPI_Request) * o.window);
    int pairs = size / 2, sender = rank < pairs, peer = sender ? rank + pairs : rank - pairs;
    FOR_SIZES(sz, 1) {
        int iters, warm; counts(sz, "bandwidth", &iters, &warm);
        fill(buf, sz, (int)sz);
        MPI_Barrier(MPI_COMM_WORLD);
        double t = stream(peer, sender, sz, iters, warm, buf, reqs), tmax;
        MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        double rate = (double)pairs * o.window * iters / tmax * 1e6;
        add(sz, rate * sz / 1e6, 0, 0, rate, iters);
    }
    free(buf); free(reqs);
}

static void multi_lat(void) {
    char *s = malloc(o.max + 1), *r = malloc(o.max + 1);
    int pairs = size / 2, lead = rank < pairs, peer = lead ? rank + pairs : rank - pairs;
    FOR_SIZES(sz, 0) {
        int iters, warm; counts(sz, "latency", &iters, &warm);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = 0;
        for (int i = 0; i < iters + warm; i++) {
            if (i == warm) t0 = MPI_Wtime();
            if (lead) { MPI_Send(s, sz, MPI_CHAR, peer, 1, MPI_COMM_WORLD); MPI_Recv(r, sz, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE); }
            else { MPI_Recv(r, sz, MPI_CHAR, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE); MPI_Send(s, sz, MPI_CHAR, peer, 1, MPI_COMM_WORLD); }
        }
        double lat = (MPI_Wtime() - t0) * 1e6 / (2.0 * iters), sum;
        MPI_Reduce(&lat, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        add(sz, sum / size, 0, 0, 0, iters);
    }
    free(s); free(r);
}

/* Collectives: each call timed alone, with a barrier before it; the
 * latency is the mean over ranks of each rank's mean time per call. */
static void collective(const char *which) {
    int isfloat = !strcmp(which, "allreduce") || !strcmp(which, "reduce") || !strcmp(which, "reduce_scatter");
    int isbar = !strcmp(which, "barrier");
    long total = o.max * (long)size + 64;
    char *s = malloc(total), *r = malloc(total);
    memset(s, 1, total); memset(r, 0, total);
    int *cnts = malloc(sizeof(int) * size), *displs = malloc(sizeof(int) * size);
    long lo = isfloat ? 4 : 0;
    if (isbar) { o.min = 0; o.max = 0; }
    FOR_SIZES(sz, lo) {
        if (isfloat && sz < 4) continue;
        int iters, warm; counts(sz, "collective", &iters, &warm);
        double acc = 0;
        for (int i = 0; i < iters + warm; i++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            if (isbar) MPI_Barrier(MPI_COMM_WORLD);
            else if (!strcmp(which, "allreduce")) MPI_Allreduce(s, r, sz / 4, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            else if (!strcmp(which, "reduce")) MPI_Reduce(s, r, sz / 4, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
            else if (!strcmp(which, "bcast")) MPI_Bcast(s, sz, MPI_CHAR, 0, MPI_COMM_WORLD);
            else if (!strcmp(which, "gather")) MPI_Gather(s, sz, MPI_CHAR, r, sz, MPI_CHAR, 0, MPI_COMM_WORLD);
            else if (!strcmp(which, "scatter")) MPI_Scatter(s, sz, MPI_CHAR, r, sz, MPI_CHAR, 0, MPI_COMM_WORLD);
            else if (!strcmp(which, "allgather")) MPI_Allgather(s, sz, MPI_CHAR, r, sz, MPI_CHAR, MPI_COMM_WORLD);
            else if (!strcmp(which, "alltoall")) MPI_Alltoall(s, sz, MPI_CHAR, r, sz, MPI_CHAR, MPI_COMM_WORLD);
            else if (!strcmp(which, "alltoallv") || !strcmp(which, "allgatherv")) {
                /* equal blocks, packed in rank order, as osu_alltoallv and osu_allgatherv */
                for (int k = 0; k < size; k++) { cnts[k] = (int)sz; displs[k] = k * (int)sz; }
                if (which[3] == 't') MPI_Alltoallv(s, cnts, displs, MPI_CHAR, r, cnts, displs, MPI_CHAR, MPI_COMM_WORLD);
                else MPI_Allgatherv(s, (int)sz, MPI_CHAR, r, cnts, displs, MPI_CHAR, MPI_COMM_WORLD);
            }
            else if (!strcmp(which, "reduce_scatter")) {
                long n = sz / 4;
                for (int k = 0; k < size; k++) cnts[k] = (int)(n / size + (k < n % size));
                MPI_Reduce_scatter(s, r, cnts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            }
            double dt = (MPI_Wtime() - t0) * 1e6;
            if (i >= warm) acc += dt;
        }
        double lat = acc / iters, sum, mn, mx;
        MPI_Reduce(&lat, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        MPI_Reduce(&lat, &mn, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
        MPI_Reduce(&lat, &mx, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        add(sz, sum / size, mn, mx, 0, iters);
    }
    free(s); free(r); free(cnts); free(displs);
}

static void write_json(const char *kind) {
    int bw = !strcmp(kind, "bandwidth");
    FILE *f = fopen(o.json, "w");
    if (!f) { perror(o.json); MPI_Abort(MPI_COMM_WORLD, 1); }
    char host[256] = "";
    gethostname(host, sizeof host);
    char when[64];
    time_t now = time(0);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(f, "{\n  \"schema\": \"parley-bench/1\",\n  \"benchmark\": \"%s\",\n  \"implementation\": \"%s\",\n", o.bench, o.impl);
    fprintf(f, "  \"ranks\": %d,\n  \"transport\": \"%s\",\n  \"unit\": \"%s\",\n  \"lower_is_better\": %s,\n", size, o.transport,
            bw ? "MB/s" : "us", bw ? "false" : "true");
    fprintf(f, "  \"host\": \"%s\",\n  \"time\": \"%s\",\n", host, when);
    if (bw) fprintf(f, "  \"window\": %d,\n", o.window);
    fprintf(f, "  \"results\": [\n");
    for (int i = 0; i < nresults; i++) {
        point p = results[i];
        fprintf(f, "    {\"size\": %ld, \"value\": %.6f", p.size, p.value);
        if (p.min > 0) fprintf(f, ", \"min\": %.6f", p.min);
        if (p.max > 0) fprintf(f, ", \"max\": %.6f", p.max);
        if (p.rate > 0) fprintf(f, ", \"rate\": %.3f", p.rate);
        fprintf(f, ", \"iterations\": %d}%s\n", p.iters, i + 1 < nresults ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
}

/* 50 ms of barriers before the first size, as bench's warmProcess does:
 * rank 0 decides every 256 barriers whether to go on. */
static void warm_process(void) {
    double t0 = MPI_Wtime();
    int more = 1;
    while (more) {
        for (int i = 0; i < 256; i++) MPI_Barrier(MPI_COMM_WORLD);
        more = MPI_Wtime() - t0 < 0.05;
        MPI_Bcast(&more, 1, MPI_INT, 0, MPI_COMM_WORLD);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 2) { if (!rank) fprintf(stderr, "usage: osu BENCHMARK [options]\n"); MPI_Abort(MPI_COMM_WORLD, 2); }
    o.bench = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "-m")) { const char *c = strchr(v, ':');
            if (c) { o.min = c == v ? 0 : parse_size(v); if (c[1]) o.max = parse_size(c + 1); } else o.max = parse_size(v); i++; }
        else if (!strcmp(a, "-i")) { o.iters = atoi(v); i++; }
        else if (!strcmp(a, "-x")) { o.warmup = atoi(v); i++; }
        else if (!strcmp(a, "-W")) { o.window = atoi(v); i++; }
        else if (!strcmp(a, "-c")) o.validate = 1;
        else if (!strcmp(a, "--transport")) { o.transport = v; i++; }
        else if (!strcmp(a, "--json")) { o.json = v; i++; }
        else if (!strcmp(a, "--impl")) { o.impl = v; i++; }
        else if (!strcmp(a, "--smoke")) o.smoke = 1;
        else if (!strcmp(a, "--quiet")) ;
        else if (!strcmp(a, "--random")) ; /* payload content matters only to parley's --compress */
        else { if (!rank) fprintf(stderr, "osu: unknown option %s\n", a); MPI_Abort(MPI_COMM_WORLD, 2); }
    }
    if (!o.smoke) warm_process();
    const char *kind = "latency";
    if (!strcmp(o.bench, "latency")) latency();
    else if (!strcmp(o.bench, "bw")) { kind = "bandwidth"; bw(0); }
    else if (!strcmp(o.bench, "bibw")) { kind = "bandwidth"; bw(1); }
    else if (!strcmp(o.bench, "mbw_mr")) { kind = "bandwidth"; mbw_mr(); }
    else if (!strcmp(o.bench, "multi_lat")) multi_lat();
    else collective(o.bench);
    if (rank == 0) {
        for (int i = 0; i < nresults; i++) printf("%-10ld %16.2f\n", results[i].size, results[i].value);
        if (o.json) write_json(kind);
    }
    MPI_Finalize();
    return 0;
}
