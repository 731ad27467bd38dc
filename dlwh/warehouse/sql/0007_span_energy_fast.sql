-- dlwh warehouse, schema version 7: span_energy computed in two sorts instead of eight.
--
-- Same columns, same integration rule (0002): piecewise-linear power per sensor and metric, trapezoids,
-- steps longer than max(5 x the series' median step, 1 s) are gaps, E(b) - E(a) with linear
-- interpolation inside the step that holds an edge, time outside the samples is uncovered.
--
-- Why: 0002's span_energy read power_cumulative three times (series bounds and two ASOF joins), and
-- each read recomputed its window functions over every sample (two sorts each) before the ASOF joins
-- sorted them again: 100,000 spans over 10 million samples took 15-30 s on 2 cores.
-- Now: (1) only the series of sensors whose run has spans are read; (2) the steps (lead over the
-- samples: sort 1) are materialised once; (3) the span edges are merged into the samples' time order
-- and one window pass of running sums (sort 2) gives each edge the integral so far and the number of
-- the step it falls in, joined back by that number: this replaces both ASOF joins (an as-of lookup
-- by window functions, as in 0005).

CREATE OR REPLACE VIEW span_energy AS
WITH used AS (
    SELECT se.sensor_id, se.run_id, se.kind AS sensor_kind, se.name AS sensor_name
    FROM sensors se
    WHERE se.run_id IN (SELECT DISTINCT run_id FROM spans)
),
ids AS MATERIALIZED (
    -- the power series spans need, each with a small number (integer keys sort and join cheaply)
    SELECT row_number() OVER (ORDER BY sensor_id, metric) AS sid, sensor_id, metric
    FROM (SELECT DISTINCT sensor_id, metric FROM samples
          WHERE metric IN ('power', 'power_instant') AND value IS NOT NULL
            AND sensor_id IN (SELECT sensor_id FROM used))
),
d AS MATERIALIZED (
    -- the steps of each series (sort 1); seq numbers the samples of a series in time order
    SELECT sid, seq, ts, power_w, next_ts, next_power_w, epoch(next_ts - ts) AS step_s
    FROM (
        SELECT i.sid, s.ts, s.value AS power_w,
               lead(s.ts)    OVER w AS next_ts,
               lead(s.value) OVER w AS next_power_w,
               row_number()  OVER w AS seq
        FROM samples s JOIN ids i USING (sensor_id, metric)
        WHERE s.metric IN ('power', 'power_instant') AND s.value IS NOT NULL
        WINDOW w AS (PARTITION BY i.sid ORDER BY s.ts)
    )
),
series AS (
    SELECT i.sid, i.sensor_id, i.metric, b.first_ts, b.last_ts, b.median_step_s
    FROM ids i
    JOIN (SELECT sid, min(ts) AS first_ts, max(ts) AS last_ts,
                 median(step_s) FILTER (WHERE step_s > 0) AS median_step_s
          FROM d GROUP BY sid) b USING (sid)
),
pairs AS MATERIALIZED (
    -- spans x the power series of their run's sensors; pid: a number for each pair
    SELECT row_number() OVER () AS pid, sp.run_id, sp.span_id, sp.parent_id, sp.kind, sp.name, sp.start_ts,
           sp.end_ts, u.sensor_id, u.sensor_kind, u.sensor_name, sr.metric, sr.first_ts, sr.last_ts, sr.sid
    FROM spans sp
    JOIN used u ON u.run_id = sp.run_id
    JOIN series sr ON sr.sensor_id = u.sensor_id
),
steps AS (
    SELECT d.*, coalesce(d.step_s > greatest(5 * sr.median_step_s, 1.0), false) AS is_gap
    FROM d JOIN series sr USING (sid)
),
events AS (
    -- samples (kind 0) and span edges (kind 1: start, 2: end); at equal times samples come first,
    -- so an edge at a sample's time falls in that sample's step (as the ASOF condition edge >= ts did)
    SELECT sid, ts, 0 AS kind, 1 AS n,
           CASE WHEN step_s IS NULL OR is_gap THEN 0.0 ELSE (power_w + next_power_w) / 2 * step_s END AS step_energy_j,
           CASE WHEN is_gap THEN step_s ELSE 0.0 END AS step_gap_s,
           NULL::BIGINT AS pid
    FROM steps
    UNION ALL
    SELECT sid, start_ts, 1, 0, 0.0, 0.0, pid FROM pairs
    UNION ALL
    SELECT sid, end_ts, 2, 0, 0.0, 0.0, pid FROM pairs
),
walked AS (
    -- running sums only (sort 2): at an edge, the integral over every step up to and including the
    -- one it falls in, and that step's seq (0: the edge is before the first sample)
    SELECT sid, ts, kind, pid,
           sum(step_energy_j) OVER w AS energy_through_j,
           sum(step_gap_s)    OVER w AS gap_through_s,
           sum(n)             OVER w AS seq
    FROM events
    WINDOW w AS (PARTITION BY sid ORDER BY ts, kind ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
edges AS (
    SELECT e.pid, e.kind,
           -- E(t): the integral up to the step's start plus the part of the step before t (a last
           -- sample or a gap adds nothing, so there the integral through the step is E(t))
           CASE WHEN c.ts IS NULL THEN 0.0
                WHEN c.next_ts IS NULL OR c.is_gap THEN e.energy_through_j
                ELSE e.energy_through_j - (c.power_w + c.next_power_w) / 2 * c.step_s
                     + epoch(e.ts - c.ts) * (c.power_w + (c.power_w + (c.next_power_w - c.power_w) * epoch(e.ts - c.ts) / c.step_s)) / 2
           END AS e_j,
           CASE WHEN c.ts IS NULL THEN 0.0
                WHEN c.is_gap THEN e.gap_through_s - c.step_s + epoch(e.ts - c.ts)
                ELSE e.gap_through_s END AS g_s
    FROM walked e
    LEFT JOIN steps c ON c.sid = e.sid AND c.seq = e.seq
    WHERE e.kind > 0
)
SELECT p.run_id, p.span_id, p.parent_id, p.kind, p.name, p.start_ts, p.end_ts,
       epoch(p.end_ts - p.start_ts) AS duration_s,
       p.sensor_id, p.sensor_kind, p.sensor_name, p.metric,
       b.e_j - a.e_j AS energy_j,
       (b.e_j - a.e_j) / nullif(epoch(p.end_ts - p.start_ts), 0) AS avg_power_w,
       b.g_s - a.g_s AS gap_s,
       epoch(p.end_ts - p.start_ts)
         - greatest(0, epoch(least(p.end_ts, p.last_ts) - greatest(p.start_ts, p.first_ts))) AS uncovered_s
FROM pairs p
JOIN edges a ON a.kind = 1 AND a.pid = p.pid
JOIN edges b ON b.kind = 2 AND b.pid = p.pid;
