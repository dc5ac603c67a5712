"""Prints the BENCHMARKS.md table from the results scripts/bench.sh wrote."""
import json, re, sys, os

out = sys.argv[1]
load = lambda f: json.load(open(os.path.join(out, f)))

def hist_quantile(q, text, name):
    buckets = [(float('inf') if le == '+Inf' else float(le), float(v))
               for le, v in re.findall(r'^%s_bucket\{le="([^"]+)"\} (\S+)$' % name, text, re.M)]
    if not buckets or buckets[-1][1] == 0:
        return None
    total, prev_le, prev_c = buckets[-1][1], 0.0, 0.0
    for le, c in buckets:
        if c >= q * total:
            if le == float('inf'):
                return prev_le
            return prev_le + (le - prev_le) * (q * total - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c

closed, opn, fb, arch, live = load('closed.json'), load('open.json'), load('fallback.json'), load('archive.json'), load('archive_live.json')
metrics = open(os.path.join(out, 'metrics.txt')).read()
vis = hist_quantile(0.99, metrics, 'callflow_archiver_visibility_seconds')
handler = re.search(r'BenchmarkHandlerRemote\S*\s+\d+\s+(\d+) ns/op\s+(\d+) B/op\s+(\d+) allocs/op', open(os.path.join(out, 'handler.txt')).read())
gob = open(os.path.join(out, 'gobench.txt')).read()
def gobench(name):
    m = re.search(r'Benchmark%s\S*\s+\d+\s+([\d.]+) ns/op(?:.*?)\s+(\d+) B/op\s+(\d+) allocs/op' % name, gob)
    return m.groups() if m else ('?', '?', '?')

s, b, ch = closed['system'], closed['baseline'], closed.get('chain')
o, ob = opn['system'], opn['baseline']
f, fbb = fb['system'], fb['baseline']
def store(audit, a):
    return 'missing %d, duplicates %d of %d' % (a['missing'], a['duplicates'], audit.get('expected', 0)) if a else 'n/a'
oa, la = opn.get('audit') or {}, live.get('audit') or {}
audit_text = 'stream: %s; with the archiver, ClickHouse FINAL: %s' % (store(oa, oa.get('stream')), store(la, la.get('clickhouse')))
def peak_rss(result):
    return ', '.join('%.0f MiB' % (p['peak_rss_bytes'] / 2**20) for p in result.get('processes') or []) or 'n/a'
gcenv = os.environ.get('BENCH_GC_MEMLIMIT', '300MiB')
def opt(name):
    return load(name) if os.path.exists(os.path.join(out, name)) else None
def lat(res):
    r = res['system']
    return '%.2f / %.2f ms (baseline %.2f / %.2f), %d errors, %d fallbacks' % (
        r['latency_ms']['p99'], r['latency_ms']['p99_9'], res['baseline']['latency_ms']['p99'], res['baseline']['latency_ms']['p99_9'],
        sum(r['errors'].values()), r['answers'].get('fallback', 0))
gc, fbgc, sepc, sepo = opt('open_gc.json'), opt('fallback_gc.json'), opt('sep_closed.json'), opt('sep_open.json')
ovl = opt('overload.json')
sweep = sorted((int(f[6:-5]), load(f)) for f in os.listdir(out) if f.startswith('sweep_') and f.endswith('.json'))
def sweep_text():
    return '; '.join('%d/s: %.2f / %.2f ms%s' % (
        rate, r['system']['latency_ms']['p99'], r['system']['latency_ms']['p99_9'],
        '' if not sum(r['system']['errors'].values()) else ' (%d errors)' % sum(r['system']['errors'].values()))
        for rate, r in sweep)
def overload(res):
    r, a = res['system'], (res.get('audit') or {})
    return ('%.0f/s offered, %.0f/s answered; service time p50 / p99 %.1f / %.1f ms, %d fallbacks, '
            'generator-side: %d not sent, %d cut at the end; stream: %s; serve peak RSS %s') % (
        r['rate'], r['throughput'], r['service_time_ms']['p50'], r['service_time_ms']['p99'], r['answers'].get('fallback', 0),
        r['errors'].get('not_sent', 0), r['errors'].get('drain_cut', 0), store(a, a.get('stream')), peak_rss(res))
rows = [
    ('Closed loop, full path (32 conns)', 'throughput >= 0.50 of baseline',
     '%.0f/s vs %.0f/s baseline' % (s['throughput'], b['throughput']), '%.3f' % (s['throughput'] / b['throughput'])),
    ('Closed loop, beside the straightforward chain (its own process)', '>= 2x the chain',
     ('%.0f/s vs %.0f/s chain' % (s['throughput'], ch['throughput'])) if ch else 'n/a', ('%.2f' % (s['throughput'] / ch['throughput'])) if ch else ''),
    ('Open loop 5000/s, p99', '<= 2 ms', '%.2f ms (baseline %.2f ms)' % (o['latency_ms']['p99'], ob['latency_ms']['p99']), ''),
    ('Open loop 5000/s, p99.9', '<= 10 ms', '%.2f ms (baseline %.2f ms)' % (o['latency_ms']['p99_9'], ob['latency_ms']['p99_9']), ''),
    ('Open loop 5000/s, p99 / p99.9, with --memory-limit %s (GC percent 400)' % gcenv, '<= 2 / 10 ms', (lat(gc) + ', serve peak RSS ' + peak_rss(gc)) if gc else 'n/a', ''),
    ('Open loop 5000/s, errors / fallbacks', '0 / 0', '%d / %d' % (sum(o['errors'].values()), o['answers'].get('fallback', 0)), ''),
    ('Open loop audit: stream / ClickHouse', 'every answered id once', audit_text, ''),
    ('p99 / p99.9 by offered rate (one serve, rising, %s s each)' % ('%.0f' % sweep[0][1]['system']['duration_s'] if sweep else '?'), 'where <= 2 ms holds', sweep_text() if sweep else 'n/a', ''),
    ('Overload: 1.5x the closed loop, 1024 connections', 'answers at capacity, every answered call recorded once', overload(ovl) if ovl else 'n/a',
     ('%.3f' % (ovl['system']['throughput'] / s['throughput'])) if ovl else ''),
    ('Breaker open, fallback p99 at 5000/s', '<= 1 ms', '%.2f ms (baseline %.2f ms)' % (f['latency_ms']['p99'], fbb['latency_ms']['p99']), ''),
    ('Breaker open, fallback p99 / p99.9 at 5000/s, with --memory-limit %s' % gcenv, '<= 1 ms', lat(fbgc) if fbgc else 'n/a', ''),
    ('Separate processes (nats-server, ingest, decider), closed loop', '', ('%.0f/s vs %.0f/s baseline' % (sepc['system']['throughput'], sepc['baseline']['throughput'])) if sepc else 'n/a',
     ('%.3f' % (sepc['system']['throughput'] / sepc['baseline']['throughput'])) if sepc else ''),
    ('Separate processes, open loop 5000/s, p99 / p99.9', '', lat(sepo) if sepo else 'n/a', ''),
] + [
    ('Archive replay, %s rows' % shape, '>= 0.85 of the fastest clickhouse-go insert (own process)',
     '%.0f rows/s, %.1f MB/s, server CPU %.1f s/M rows (baseline %.0f rows/s, %.1f MB/s, %.1f s/M rows: batch %d, %d conns, %s)' % (
         a['rows_per_s'], a['mb_per_s'], a['server_cpu_s_per_m_rows'],
         b['rows_per_s'], b['mb_per_s'], b['server_cpu_s_per_m_rows'], b['batch'], b['conns'], b['compression']),
     '%.2f' % arch[shape]['ratio'])
    for shape in ('bench', 'realistic') if shape in arch
    for a, b in [(arch[shape]['archive'], arch[shape]['baseline'])]
] + [
    ('200 to row visible, p99 (at 5000/s)', '< 2 s', (('%.2f s' % vis) if vis is not None else 'n/a') + ' (call p99 with ClickHouse on the same cores: %.1f ms)' % live['system']['latency_ms']['p99'], ''),
    ('Handler allocations (ingest process alone)', '<= 30 a call', ('%s allocs, %s B, %s ns' % (handler.group(3), handler.group(2), handler.group(1))) if handler else '?', ''),
    ('Parse event', 'a handful of allocations', '%s ns, %s B, %s allocs' % gobench('ParseEvent'), ''),
    ('Encode callflow', 'a handful of allocations', '%s ns, %s B, %s allocs' % gobench('EncodeResponse'), ''),
    ('Serve peak RSS (VmHWM) after the 5000/s run', '< 150 MiB + the duplicate window\'s ids', peak_rss(opn), ''),
]
if os.path.exists(os.path.join(out, 'soak.json')):
    sk = load('soak.json')
    ss, sa = sk['system'], sk.get('audit') or {}
    for p in sk.get('processes') or []:
        rows.append(('Serve RSS over the %.0f s soak at 5000/s' % ss['duration_s'], 'flat, < 150 MiB + the ids (README)',
                     '%.0f MiB at start, %.0f at end, %.0f highest sampled, peak %.0f' % tuple(p[k] / 2**20 for k in ('rss_start_bytes', 'rss_end_bytes', 'rss_max_bytes', 'peak_rss_bytes')), ''))
    rows.append(('Soak p99 / p99.9, errors, stream audit', '', '%.2f / %.2f ms, %d errors, %s' % (ss['latency_ms']['p99'], ss['latency_ms']['p99_9'], sum(ss['errors'].values()), store(sa, sa.get('stream'))), ''))
print('| target | goal | measured | ratio |\n| --- | --- | --- | --- |')
for r in rows:
    print('| %s | %s | %s | %s |' % r)
