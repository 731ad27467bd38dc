-- dlwh warehouse, schema version 10: span energy you can trust (docs/spans.md, "Span energy").
--
-- 1. Readings that cover a window integrate over it. A power reading with duration_s > 0 (powermetrics,
--    perf RAPL interval averages, placed at the window's midpoint) stands for constant power over
--    [ts - duration_s/2, ts + duration_s/2]. A series (sensor, metric) with any such reading is a
--    window series: only its window readings count (perf's two edge samples without duration_s are
--    left out), each window is one step of constant power, and time between windows that do not
--    touch (more than 1 ms apart) is a gap. Series of point readings keep the trapezoid rule (0002).
--    power_steps (and so power_cumulative, sample_gaps, run_energy and the carbon views) and
--    span_energy follow this rule; a one-sample powermetrics file now gives P x its window, not 0 J.
-- 2. span_energy_estimates: every estimate of every span from every power series, with its method
--    and how well it is measured:
--      'trapezoid'         the running integral of the series' power (0007's rule), E(b) - E(a);
--      'counter'           the sensor's energy counter (energy_total, NVML) read by the collector,
--                          interpolated linearly in time inside the counter interval holding each edge;
--      'counter_anchored'  the counter, interpolated inside each counter interval along the running
--                          integral of power_instant: the instant samples give the shape, rescaled so
--                          that each interval holds exactly the counter's increment;
--      'in_process_counter' the span attribute energy_j of span(..., energy=True) on one GPU (the
--                          counter read in the workload's process at both edges), method_rank 0.
--    error_j: the energy one update period holds at each edge (counter: the increment of the counter
--    interval holding each edge, a bound while the counter is monotonic; trapezoid: |P| at each edge
--    x resolution_s). resolution_s: what the series can resolve in time (counter: its read interval;
--    trapezoid: the largest of the sampling interval, the interval between changes of the value and
--    the averaging window: 1 s for a GPU's 'power', nvmlDeviceGetPowerUsage on Ampere and newer;
--    the window for window series). resolved: duration_s >= 2 x resolution_s.
-- 3. span_energy_best: one estimate per span and physical device (kind:index, else uuid, else name),
--    so that two tools that watched the same GPU are never added together: the lowest method_rank
--    (counter, counter_anchored, trapezoid of power_instant or of non-averaged power, trapezoid of
--    1 s averaged power), then the finest resolution, then NVML. The order is measured
--    (benchmarks/bench_spans.py, docs/accuracy.md "Span energy"): on held-out NVML counter readings
--    of a training run the linear counter beat the anchored one at every span length.
-- 4. span_stats: repeated spans (run, kind, name, device): mean energy and power per repetition with
--    95 % intervals from the repetitions (Student t); span_phase_sums: each parent group's mean
--    energy against the mean of the sum of its children (phases of a step), paired.
--
-- Set-based throughout: one window pass over the samples (steps) and one over samples + counter
-- readings + span edges (running sums), as in 0007; equality joins on numbered steps and counter
-- intervals instead of ASOF joins.

CREATE OR REPLACE MACRO dlwh_t975(nu) AS
    CASE WHEN nu IS NULL OR nu < 1 THEN NULL
         WHEN nu = 1 THEN 12.706 WHEN nu = 2 THEN 4.303 WHEN nu = 3 THEN 3.182
         ELSE 1.959964 + (1.959964 ^ 3 + 1.959964) / (4 * nu)
              + (5 * 1.959964 ^ 5 + 16 * 1.959964 ^ 3 + 3 * 1.959964) / (96 * nu ^ 2)
              + (3 * 1.959964 ^ 7 + 19 * 1.959964 ^ 5 + 17 * 1.959964 ^ 3 - 15 * 1.959964) / (384 * nu ^ 3)
    END;

CREATE OR REPLACE VIEW power_steps AS
WITH win AS (
    SELECT DISTINCT sensor_id, metric FROM samples
    WHERE metric IN ('power', 'power_instant') AND value IS NOT NULL AND duration_s > 0
),
p AS (
    SELECT s.sensor_id, s.metric, s.ts, s.value AS power_w,
           lead(s.ts)    OVER w AS next_ts,
           lead(s.value) OVER w AS next_power_w
    FROM samples s ANTI JOIN win USING (sensor_id, metric)
    WHERE s.metric IN ('power', 'power_instant') AND s.value IS NOT NULL
    WINDOW w AS (PARTITION BY s.sensor_id, s.metric ORDER BY s.ts)
),
d AS (SELECT *, epoch(next_ts - ts) AS step_s FROM p),
med AS (
    SELECT sensor_id, metric, median(step_s) AS median_step_s
    FROM d WHERE step_s > 0 GROUP BY sensor_id, metric
),
w0 AS (
    SELECT s.sensor_id, s.metric, s.value AS power_w, s.duration_s,
           s.ts - to_microseconds(CAST(round(s.duration_s * 500000) AS BIGINT)) AS s_ts,
           s.ts + to_microseconds(CAST(round(s.duration_s * 500000) AS BIGINT)) AS e_ts
    FROM samples s SEMI JOIN win USING (sensor_id, metric)
    WHERE s.metric IN ('power', 'power_instant') AND s.value IS NOT NULL AND s.duration_s > 0
),
w1 AS (
    SELECT *, lead(s_ts) OVER (PARTITION BY sensor_id, metric ORDER BY s_ts) AS next_s,
           median(duration_s) OVER (PARTITION BY sensor_id, metric) AS median_step_s
    FROM w0
),
w2 AS (
    -- a window's end: the next window's start where they touch (within 1 ms) or overlap
    SELECT *, CASE WHEN next_s IS NOT NULL AND next_s <= e_ts + INTERVAL 1 MILLISECOND THEN next_s
                   ELSE e_ts END AS end_ts
    FROM w1
)
SELECT d.sensor_id, d.metric, d.ts, d.power_w, d.next_ts, d.next_power_w, d.step_s,
       med.median_step_s,
       coalesce(d.step_s > greatest(5 * med.median_step_s, 1.0), false) AS is_gap
FROM d LEFT JOIN med USING (sensor_id, metric)
UNION ALL
SELECT sensor_id, metric, s_ts, power_w, end_ts, power_w, epoch(end_ts - s_ts), median_step_s, false
FROM w2
UNION ALL
-- after each window: nothing more (the last), or a gap to the next window
SELECT sensor_id, metric, end_ts, power_w, next_s, power_w, epoch(next_s - end_ts), median_step_s, true
FROM w2 WHERE next_s IS NULL OR next_s > end_ts;

CREATE OR REPLACE VIEW run_energy AS
WITH pw AS (
    SELECT sensor_id, metric,
           min(ts) AS first_ts, max(ts) AS last_ts,
           sum(CASE WHEN step_s IS NULL OR is_gap THEN 0.0
                    ELSE (power_w + next_power_w) / 2 * step_s END) AS energy_j,
           sum(CASE WHEN is_gap THEN step_s ELSE 0.0 END) AS gap_s,
           count(*) FILTER (WHERE is_gap AND step_s IS NOT NULL) AS n_gaps,
           max(power_w) AS peak_power_w,
           any_value(median_step_s) AS median_step_s
    FROM power_steps GROUP BY sensor_id, metric
),
n AS (
    -- readings used: the window readings of a window series, every reading of a point series
    SELECT sensor_id, metric,
           CASE WHEN count(*) FILTER (WHERE duration_s > 0) > 0 THEN count(*) FILTER (WHERE duration_s > 0)
                ELSE count(*) END AS n_samples
    FROM samples WHERE metric IN ('power', 'power_instant') AND value IS NOT NULL
    GROUP BY sensor_id, metric
),
reported AS (
    SELECT sensor_id,
           coalesce(sum(value) FILTER (WHERE metric = 'energy'), 0)
             + coalesce(arg_max(value, ts) FILTER (WHERE metric = 'energy_total')
                        - arg_min(value, ts) FILTER (WHERE metric = 'energy_total'), 0) AS reported_energy_j,
           string_agg(DISTINCT metric, ',') AS reported_from
    FROM samples
    WHERE metric IN ('energy', 'energy_total') AND value IS NOT NULL
    GROUP BY sensor_id
)
SELECT se.run_id, pw.sensor_id, se.kind AS sensor_kind, se.name AS sensor_name, se.tool,
       pw.metric,
       pw.first_ts, pw.last_ts,
       epoch(pw.last_ts - pw.first_ts) AS duration_s,
       n.n_samples, pw.median_step_s AS sample_interval_s,
       pw.energy_j,
       pw.energy_j / nullif(epoch(pw.last_ts - pw.first_ts) - pw.gap_s, 0) AS avg_power_w,
       pw.peak_power_w,
       pw.gap_s, pw.n_gaps,
       r.reported_energy_j, r.reported_from,
       100 * (pw.energy_j - r.reported_energy_j) / nullif(r.reported_energy_j, 0) AS energy_diff_pct
FROM pw
JOIN sensors se USING (sensor_id)
JOIN n USING (sensor_id, metric)
LEFT JOIN reported r USING (sensor_id);

-- the work of span_energy_estimates; with_counter = false leaves the counter methods out (span_energy)
CREATE OR REPLACE MACRO dlwh_span_estimates(with_counter) AS TABLE
WITH used AS (
    SELECT se.sensor_id, se.run_id, se.kind AS sensor_kind, se.name AS sensor_name, se.tool, se.device_uuid,
           se.kind || ':' || coalesce(CAST(se.device_index AS VARCHAR), se.device_uuid, se.name, se.sensor_id) AS device
    FROM sensors se
    WHERE se.run_id IN (SELECT DISTINCT run_id FROM spans)
),
win AS (
    SELECT DISTINCT sensor_id, metric FROM samples
    WHERE metric IN ('power', 'power_instant') AND value IS NOT NULL AND duration_s > 0
      AND sensor_id IN (SELECT sensor_id FROM used)
),
cnt AS MATERIALIZED (
    -- the energy-counter readings of those sensors (J), numbered per sensor
    SELECT s.sensor_id, s.ts, s.value AS e_j
    FROM samples s
    WHERE with_counter AND s.metric = 'energy_total' AND s.value IS NOT NULL
      AND s.sensor_id IN (SELECT sensor_id FROM used)
),
ids AS MATERIALIZED (
    -- the power series spans need, each with a small number; host: the series that carries the
    -- sensor's counter readings (power_instant where there is one)
    SELECT row_number() OVER (ORDER BY x.sensor_id, x.metric) AS sid, x.sensor_id, x.metric,
           w.sensor_id IS NOT NULL AS windowed,
           row_number() OVER (PARTITION BY x.sensor_id ORDER BY x.metric = 'power_instant' DESC,
                              w.sensor_id IS NULL DESC, x.metric) = 1
             AND x.sensor_id IN (SELECT sensor_id FROM cnt) AS host
    FROM (SELECT DISTINCT sensor_id, metric FROM samples
          WHERE metric IN ('power', 'power_instant') AND value IS NOT NULL
            AND sensor_id IN (SELECT sensor_id FROM used)) x
    LEFT JOIN win w USING (sensor_id, metric)
),
pt AS (
    -- point series: steps between consecutive readings (sort 1); seq numbers them in time order
    SELECT i.sid, s.ts, s.value AS power_w,
           lead(s.ts)    OVER w AS next_ts,
           lead(s.value) OVER w AS next_power_w,
           row_number()  OVER w AS seq
    FROM samples s JOIN ids i USING (sensor_id, metric)
    WHERE s.metric IN ('power', 'power_instant') AND s.value IS NOT NULL AND NOT i.windowed
    WINDOW w AS (PARTITION BY i.sid ORDER BY s.ts)
),
wn AS (
    -- window series: window k is step 2k-1 (constant power), the time after it step 2k
    SELECT sid, s_ts, power_w, duration_s, next_s, k,
           CASE WHEN next_s IS NOT NULL AND next_s <= e_ts + INTERVAL 1 MILLISECOND THEN next_s ELSE e_ts END AS end_ts
    FROM (
        SELECT i.sid, s.value AS power_w, s.duration_s,
               s.ts - to_microseconds(CAST(round(s.duration_s * 500000) AS BIGINT)) AS s_ts,
               s.ts + to_microseconds(CAST(round(s.duration_s * 500000) AS BIGINT)) AS e_ts,
               lead(s.ts - to_microseconds(CAST(round(s.duration_s * 500000) AS BIGINT))) OVER w AS next_s,
               row_number() OVER w AS k
        FROM samples s JOIN ids i USING (sensor_id, metric)
        WHERE s.metric IN ('power', 'power_instant') AND s.value IS NOT NULL AND i.windowed AND s.duration_s > 0
        WINDOW w AS (PARTITION BY i.sid ORDER BY s.ts)
    )
),
d AS MATERIALIZED (
    SELECT sid, seq, ts, power_w, next_ts, next_power_w, epoch(next_ts - ts) AS step_s, false AS hole FROM pt
    UNION ALL
    SELECT sid, 2 * k - 1, s_ts, power_w, end_ts, power_w, epoch(end_ts - s_ts), false FROM wn
    UNION ALL
    SELECT sid, 2 * k, end_ts, power_w, next_s, power_w, epoch(next_s - end_ts), true FROM wn
),
series AS (
    SELECT i.sid, i.sensor_id, i.metric, i.windowed, i.host, b.first_ts, b.last_ts, b.median_step_s,
           CASE WHEN i.windowed THEN b.median_window_s
                ELSE epoch(b.last_ts - b.first_ts) / nullif(b.n_changes, 0) END AS update_s,
           b.median_window_s
    FROM ids i
    JOIN (SELECT sid, min(ts) AS first_ts, max(ts) AS last_ts,
                 median(step_s) FILTER (WHERE step_s > 0 AND NOT hole) AS median_step_s,
                 count(*) FILTER (WHERE next_power_w <> power_w) AS n_changes,
                 median(step_s) FILTER (WHERE NOT hole AND step_s > 0) AS median_window_s
          FROM d GROUP BY sid) b USING (sid)
),
pairs AS MATERIALIZED (
    -- spans x the power series of their run's sensors; pid: a number for each pair
    SELECT row_number() OVER () AS pid, sp.run_id, sp.span_id, sp.parent_id, sp.kind, sp.name, sp.start_ts,
           sp.end_ts, u.sensor_id, u.sensor_kind, u.sensor_name, u.tool, u.device, sr.metric, sr.first_ts,
           sr.last_ts, sr.sid, sr.host, sr.windowed, sr.median_step_s, sr.update_s
    FROM spans sp
    JOIN used u ON u.run_id = sp.run_id
    JOIN series sr ON sr.sensor_id = u.sensor_id
),
steps AS (
    SELECT d.*, CASE WHEN sr.windowed THEN d.hole AND d.step_s > 0
                     ELSE coalesce(d.step_s > greatest(5 * sr.median_step_s, 1.0), false) END AS is_gap
    FROM d JOIN series sr USING (sid)
),
events AS (
    -- samples (kind 0), counter readings (kind 1, on the host series), span edges (2: start, 3: end);
    -- at equal times samples come first, then counter readings, so that an edge at a sample's or a
    -- reading's time falls in the step and the counter interval that start there. n counts samples
    -- and counter readings in one DOUBLE (samples + 2^26 x readings: exact below 2^26 readings of a
    -- series), so that one running sum gives both
    SELECT sid, ts, 0 AS kind, 1.0 AS n,
           CASE WHEN step_s IS NULL OR is_gap THEN 0.0 ELSE (power_w + next_power_w) / 2 * step_s END AS step_energy_j,
           CASE WHEN is_gap THEN step_s ELSE 0.0 END AS step_gap_s,
           NULL::BIGINT AS pid, NULL::DOUBLE AS counter_j
    FROM steps
    UNION ALL
    SELECT i.sid, c.ts, 1, 67108864.0, 0.0, 0.0, NULL, c.e_j
    FROM cnt c JOIN ids i ON i.sensor_id = c.sensor_id AND i.host
    UNION ALL
    SELECT sid, start_ts, 2, 0.0, 0.0, 0.0, pid, NULL FROM pairs
    UNION ALL
    SELECT sid, end_ts, 3, 0.0, 0.0, 0.0, pid, NULL FROM pairs
),
walked AS (
    -- running sums only (sort 2): at an edge, the integral through the step it falls in, that
    -- step's seq (0: before the first sample) and the number of counter readings up to it (ck)
    SELECT sid, ts, kind, pid, counter_j, energy_through_j, gap_through_s,
           CAST(counts - floor(counts / 67108864.0) * 67108864.0 AS BIGINT) AS seq,
           CAST(floor(counts / 67108864.0) AS BIGINT) AS ck
    FROM (
        SELECT sid, ts, kind, pid, counter_j,
               sum(step_energy_j) OVER w AS energy_through_j,
               sum(step_gap_s)    OVER w AS gap_through_s,
               sum(n)             OVER w AS counts
        FROM events
        WINDOW w AS (PARTITION BY sid ORDER BY ts, kind ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    )
    WHERE kind > 0
),
edges AS MATERIALIZED (
    SELECT e.sid, e.pid, e.kind, e.ts, e.ck, e.counter_j,
           -- E(t): the integral up to the step's start plus the part of the step before t
           CASE WHEN c.ts IS NULL THEN 0.0
                WHEN c.next_ts IS NULL OR c.is_gap THEN e.energy_through_j
                ELSE e.energy_through_j - (c.power_w + c.next_power_w) / 2 * c.step_s
                     + epoch(e.ts - c.ts) * (c.power_w + (c.power_w + (c.next_power_w - c.power_w) * epoch(e.ts - c.ts) / nullif(c.step_s, 0))) / 2
           END AS e_j,
           CASE WHEN c.ts IS NULL THEN 0.0
                WHEN c.is_gap THEN e.gap_through_s - c.step_s + epoch(e.ts - c.ts)
                ELSE e.gap_through_s END AS g_s,
           -- P(t), for the error bound (0 in a gap or outside the samples)
           CASE WHEN c.ts IS NULL OR c.next_ts IS NULL OR c.is_gap THEN 0.0
                ELSE c.power_w + (c.next_power_w - c.power_w) * epoch(e.ts - c.ts) / nullif(c.step_s, 0) END AS p_w
    FROM walked e
    LEFT JOIN steps c ON c.sid = e.sid AND c.seq = e.seq
),
civ0 AS (
    -- counter intervals k of each host series: from reading k to reading k + 1, with the integral
    -- of the series' power at both ends
    SELECT sid, ck AS k, ts, counter_j, e_j,
           lead(ts)        OVER w AS next_ts,
           lead(counter_j) OVER w AS next_counter_j,
           lead(e_j)       OVER w AS next_e_j
    FROM edges WHERE kind = 1
    WINDOW w AS (PARTITION BY sid ORDER BY ck)
),
civ AS (
    SELECT c.*, m.counter_interval_s
    FROM civ0 c
    JOIN (SELECT sid, median(epoch(next_ts - ts)) AS counter_interval_s FROM civ0 GROUP BY sid) m USING (sid)
),
cedge AS (
    -- the counter at a span edge: linear in time, and along the integral of the series' power
    SELECT x.pid, x.kind,
           v.counter_j + (v.next_counter_j - v.counter_j) * epoch(x.ts - v.ts) / nullif(epoch(v.next_ts - v.ts), 0) AS lin_j,
           v.counter_j + (v.next_counter_j - v.counter_j)
             * CASE WHEN v.next_e_j - v.e_j > 0 THEN (x.e_j - v.e_j) / (v.next_e_j - v.e_j)
                    ELSE epoch(x.ts - v.ts) / nullif(epoch(v.next_ts - v.ts), 0) END AS anchored_j,
           v.next_counter_j - v.counter_j AS interval_j,
           v.k, v.counter_interval_s
    FROM edges x
    JOIN civ v ON v.sid = x.sid AND v.k = x.ck
    WHERE x.kind > 1 AND v.next_ts IS NOT NULL AND v.next_counter_j >= v.counter_j
),
base AS (
    SELECT p.*, epoch(p.end_ts - p.start_ts) AS duration_s,
           b.e_j - a.e_j AS trap_j, b.g_s - a.g_s AS gap_s,
           abs(a.p_w) + abs(b.p_w) AS edge_power_w,
           epoch(p.end_ts - p.start_ts)
             - greatest(0, epoch(least(p.end_ts, p.last_ts) - greatest(p.start_ts, p.first_ts))) AS uncovered_s,
           CASE WHEN p.sensor_kind = 'gpu' AND p.metric = 'power' THEN 1.0
                WHEN p.windowed THEN p.median_step_s END AS averaged_s,
           ca.lin_j AS lin_a, cb.lin_j AS lin_b, ca.anchored_j AS anc_a, cb.anchored_j AS anc_b,
           CASE WHEN ca.k = cb.k THEN ca.interval_j ELSE ca.interval_j + cb.interval_j END AS counter_edge_j,
           coalesce(ca.counter_interval_s, cb.counter_interval_s) AS counter_interval_s
    FROM pairs p
    JOIN edges a ON a.kind = 2 AND a.pid = p.pid
    JOIN edges b ON b.kind = 3 AND b.pid = p.pid
    LEFT JOIN cedge ca ON ca.kind = 2 AND ca.pid = p.pid
    LEFT JOIN cedge cb ON cb.kind = 3 AND cb.pid = p.pid
),
inproc AS (
    -- spans opened with span(..., energy=True) on one GPU: the counter read in the workload's process
    SELECT sp.run_id, sp.span_id, sp.parent_id, sp.kind, sp.name, sp.start_ts, sp.end_ts,
           CAST(json_extract(sp.attrs, '$.energy_j') AS DOUBLE) AS energy_j,
           json_extract_string(sp.attrs, '$.energy_gpus[0]') AS uuid
    FROM spans sp
    WHERE with_counter AND json_extract(sp.attrs, '$.energy_j') IS NOT NULL
      AND json_array_length(sp.attrs, '$.energy_gpus') = 1
),
gdev AS (
    SELECT DISTINCT run_id, device_uuid, device FROM used WHERE sensor_kind = 'gpu' AND device_uuid IS NOT NULL
),
est AS (
    SELECT run_id, span_id, parent_id, kind, name, start_ts, end_ts, duration_s, device, sensor_id,
           sensor_kind, sensor_name, tool, metric, 'trapezoid' AS method, trap_j AS energy_j,
           greatest(median_step_s, coalesce(update_s, 0), coalesce(averaged_s, 0)) AS resolution_s,
           median_step_s AS sample_interval_s, update_s AS update_interval_s, NULL::DOUBLE AS counter_interval_s,
           averaged_s, gap_s, uncovered_s,
           CASE WHEN averaged_s = 1.0 AND NOT windowed THEN 4 ELSE 3 END AS method_rank,
           edge_power_w * greatest(median_step_s, coalesce(update_s, 0), coalesce(averaged_s, 0)) AS error_j
    FROM base
    UNION ALL
    SELECT run_id, span_id, parent_id, kind, name, start_ts, end_ts, duration_s, device, sensor_id,
           sensor_kind, sensor_name, tool, metric, 'counter', lin_b - lin_a,
           counter_interval_s, median_step_s, update_s, counter_interval_s, averaged_s, gap_s,
           uncovered_s, 1, counter_edge_j
    FROM base WHERE with_counter AND host AND lin_a IS NOT NULL AND lin_b IS NOT NULL
    UNION ALL
    SELECT run_id, span_id, parent_id, kind, name, start_ts, end_ts, duration_s, device, sensor_id,
           sensor_kind, sensor_name, tool, metric, 'counter_anchored', anc_b - anc_a,
           greatest(median_step_s, coalesce(update_s, 0)), median_step_s, update_s, counter_interval_s,
           averaged_s, gap_s, uncovered_s, 2, counter_edge_j
    FROM base WHERE with_counter AND host AND metric = 'power_instant' AND NOT windowed AND anc_a IS NOT NULL AND anc_b IS NOT NULL
    UNION ALL
    -- the in-process counter: its reads lag the counter's updates (about every 100 ms on Hopper) by
    -- up to one update at each edge, so the bound is 2 x 0.1 s of the span's average power
    SELECT ip.run_id, ip.span_id, ip.parent_id, ip.kind, ip.name, ip.start_ts, ip.end_ts,
           epoch(ip.end_ts - ip.start_ts), g.device, NULL, 'gpu', NULL, 'span', 'energy_total',
           'in_process_counter', ip.energy_j, 0.1, NULL, NULL, 0.1, NULL, 0.0, 0.0, 0,
           0.2 * ip.energy_j / nullif(epoch(ip.end_ts - ip.start_ts), 0)
    FROM inproc ip JOIN gdev g ON g.run_id = ip.run_id AND g.device_uuid = ip.uuid
)
SELECT run_id, span_id, parent_id, kind, name, start_ts, end_ts, duration_s, device, sensor_id, sensor_kind,
       sensor_name, tool, metric, method, energy_j, energy_j / nullif(duration_s, 0) AS avg_power_w, error_j,
       method_rank, resolution_s, sample_interval_s, update_interval_s, counter_interval_s, averaged_s,
       duration_s >= 2 * resolution_s AS resolved, gap_s, uncovered_s,
       concat_ws('; ',
           CASE WHEN averaged_s = 1.0 AND method = 'trapezoid' AND metric = 'power'
                THEN 'power is a 1 s moving average (nvmlDeviceGetPowerUsage, nvidia-smi power.draw): a span of a few seconds or less gets its neighbours'' energy' END,
           CASE WHEN averaged_s IS NOT NULL AND averaged_s <> 1.0 THEN 'readings are averages over ' || round(averaged_s, 3) || ' s windows' END,
           CASE WHEN NOT (duration_s >= 2 * resolution_s)
                THEN 'shorter than twice the ' || round(resolution_s, 3) || ' s this estimate resolves: use span_stats over repetitions' END,
           CASE WHEN gap_s > 0 THEN round(gap_s, 3) || ' s of sample gaps inside' END,
           CASE WHEN uncovered_s > 0 THEN round(uncovered_s, 3) || ' s outside the samples' END) AS note
FROM est;

CREATE OR REPLACE VIEW span_energy_estimates AS SELECT * FROM dlwh_span_estimates(true);

CREATE OR REPLACE VIEW span_energy AS
SELECT run_id, span_id, parent_id, kind, name, start_ts, end_ts, duration_s, sensor_id, sensor_kind,
       sensor_name, metric, energy_j, avg_power_w, gap_s, uncovered_s
FROM dlwh_span_estimates(false) WHERE method = 'trapezoid';

CREATE OR REPLACE VIEW span_energy_best AS
SELECT * EXCLUDE (rk)
FROM (
    SELECT e.*,
           row_number() OVER (PARTITION BY run_id, span_id, device
                              ORDER BY method_rank, resolution_s, tool = 'nvml' DESC, sensor_id, metric) AS rk
    FROM span_energy_estimates e
    WHERE energy_j IS NOT NULL
)
WHERE rk = 1;

CREATE OR REPLACE VIEW span_stats AS
WITH b AS MATERIALIZED (
    SELECT run_id, kind, name, device, energy_j, duration_s, error_j, method, resolved FROM span_energy_best
),
g AS (
    SELECT run_id, kind, name, device, count(*) AS n,
           avg(energy_j) AS mean_energy_j, stddev_samp(energy_j) AS sd_energy_j,
           avg(duration_s) AS mean_duration_s, stddev_samp(duration_s) AS sd_duration_s,
           sum(energy_j) / nullif(sum(duration_s), 0) AS mean_power_w,
           avg(error_j) AS mean_error_j,
           count(*) FILTER (WHERE NOT resolved) AS n_unresolved,
           string_agg(DISTINCT method, ',' ORDER BY method) AS methods
    FROM b GROUP BY ALL
),
r AS (
    -- the ratio estimator's spread: residuals e_i - R d_i
    SELECT b.run_id, b.kind, b.name, b.device,
           stddev_samp(b.energy_j - g.mean_power_w * b.duration_s) AS sd_resid_j
    FROM b JOIN g USING (run_id, kind, name, device) GROUP BY ALL
)
SELECT g.run_id, g.kind, g.name, g.device, g.n, g.methods,
       g.mean_duration_s,
       g.mean_energy_j,
       dlwh_t975(g.n - 1) * g.sd_energy_j / sqrt(g.n) AS energy_ci95_j,
       g.mean_energy_j - dlwh_t975(g.n - 1) * g.sd_energy_j / sqrt(g.n) AS energy_lo_j,
       g.mean_energy_j + dlwh_t975(g.n - 1) * g.sd_energy_j / sqrt(g.n) AS energy_hi_j,
       g.sd_energy_j,
       g.mean_power_w,
       dlwh_t975(g.n - 1) * r.sd_resid_j / sqrt(g.n) / nullif(g.mean_duration_s, 0) AS power_ci95_w,
       g.mean_error_j AS mean_error_j,
       g.n_unresolved
FROM g JOIN r USING (run_id, kind, name, device);

CREATE OR REPLACE VIEW span_phase_sums AS
WITH b AS MATERIALIZED (
    SELECT run_id, span_id, parent_id, kind, name, device, energy_j FROM span_energy_best
),
ch AS (
    SELECT run_id, parent_id AS span_id, device, sum(energy_j) AS children_j, count(*) AS n_children,
           string_agg(DISTINCT name, ',' ORDER BY name) AS children
    FROM b WHERE parent_id IS NOT NULL GROUP BY ALL
),
j AS (
    SELECT p.run_id, p.kind, p.name, p.device, p.energy_j, ch.children_j, ch.n_children, ch.children
    FROM b p JOIN ch USING (run_id, span_id, device)
)
SELECT run_id, kind, name, device, count(*) AS n,
       string_agg(DISTINCT children, ';') AS children,
       avg(n_children) AS children_per_parent,
       avg(energy_j) AS mean_energy_j,
       dlwh_t975(count(*) - 1) * stddev_samp(energy_j) / sqrt(count(*)) AS energy_ci95_j,
       avg(children_j) AS children_mean_energy_j,
       avg(energy_j - children_j) AS mean_diff_j,
       dlwh_t975(count(*) - 1) * stddev_samp(energy_j - children_j) / sqrt(count(*)) AS diff_ci95_j,
       100 * avg(children_j - energy_j) / nullif(avg(energy_j), 0) AS children_diff_pct
FROM j GROUP BY ALL;
