-- dlwh warehouse, schema version 2: energy views.
--
-- Integration rule (README, "How energy is computed"):
--  * Power readings of one sensor and metric ('power' or 'power_instant') form a piecewise-linear
--    curve through the samples; energy is its integral (the trapezoidal rule), in J.
--  * A step between two consecutive samples longer than max(5 x the series' median step, 1 s) is a
--    gap: it is not bridged, adds no energy, and its length is reported (gap_s, n_gaps, sample_gaps).
--  * Energy over any interval [a, b] is E(b) - E(a), where E is the running integral evaluated with
--    linear interpolation inside the step that holds a or b; so nested spans add up to their parent.
--  * Time outside the first..last sample of a series is 'uncovered' and reported, never extrapolated.

CREATE OR REPLACE VIEW power_steps AS
WITH p AS (
    SELECT sensor_id, metric, ts, value AS power_w,
           lead(ts)    OVER w AS next_ts,
           lead(value) OVER w AS next_power_w
    FROM samples
    WHERE metric IN ('power', 'power_instant') AND value IS NOT NULL
    WINDOW w AS (PARTITION BY sensor_id, metric ORDER BY ts)
),
d AS (
    SELECT *, epoch(next_ts - ts) AS step_s FROM p
),
med AS (
    SELECT sensor_id, metric, median(step_s) AS median_step_s
    FROM d WHERE step_s > 0 GROUP BY sensor_id, metric
)
SELECT d.sensor_id, d.metric, d.ts, d.power_w, d.next_ts, d.next_power_w, d.step_s,
       med.median_step_s,
       coalesce(d.step_s > greatest(5 * med.median_step_s, 1.0), false) AS is_gap
FROM d LEFT JOIN med USING (sensor_id, metric);

CREATE OR REPLACE VIEW power_cumulative AS
WITH s AS (
    SELECT *,
           CASE WHEN step_s IS NULL OR is_gap THEN 0.0
                ELSE (power_w + next_power_w) / 2 * step_s END AS step_energy_j,
           CASE WHEN is_gap THEN step_s ELSE 0.0 END AS step_gap_s
    FROM power_steps
)
SELECT *,
       sum(step_energy_j) OVER w - step_energy_j AS cum_energy_j,  -- energy from the first sample to ts
       sum(step_gap_s)    OVER w - step_gap_s    AS cum_gap_s
FROM s
WINDOW w AS (PARTITION BY sensor_id, metric ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);

CREATE OR REPLACE VIEW sample_gaps AS
SELECT se.run_id, g.sensor_id, g.metric, g.ts AS gap_start_ts, g.next_ts AS gap_end_ts,
       g.step_s AS gap_s, g.median_step_s
FROM power_steps g JOIN sensors se USING (sensor_id)
WHERE g.is_gap;

CREATE OR REPLACE VIEW run_energy AS
WITH pw AS (
    SELECT sensor_id, metric,
           min(ts) AS first_ts, max(ts) AS last_ts,
           count(*) AS n_samples,
           sum(CASE WHEN step_s IS NULL OR is_gap THEN 0.0
                    ELSE (power_w + next_power_w) / 2 * step_s END) AS energy_j,
           sum(CASE WHEN is_gap THEN step_s ELSE 0.0 END) AS gap_s,
           count(*) FILTER (WHERE is_gap) AS n_gaps,
           max(power_w) AS peak_power_w,
           any_value(median_step_s) AS median_step_s
    FROM power_steps GROUP BY sensor_id, metric
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
       pw.n_samples, pw.median_step_s AS sample_interval_s,
       pw.energy_j,
       pw.energy_j / nullif(epoch(pw.last_ts - pw.first_ts) - pw.gap_s, 0) AS avg_power_w,
       pw.peak_power_w,
       pw.gap_s, pw.n_gaps,
       r.reported_energy_j, r.reported_from,
       100 * (pw.energy_j - r.reported_energy_j) / nullif(r.reported_energy_j, 0) AS energy_diff_pct
FROM pw
JOIN sensors se USING (sensor_id)
LEFT JOIN reported r USING (sensor_id);

CREATE OR REPLACE VIEW span_energy AS
WITH series AS (
    SELECT sensor_id, metric, min(ts) AS first_ts, max(ts) AS last_ts
    FROM power_cumulative GROUP BY sensor_id, metric
),
pairs AS (
    SELECT sp.run_id, sp.span_id, sp.parent_id, sp.kind, sp.name, sp.start_ts, sp.end_ts,
           se.sensor_id, se.kind AS sensor_kind, se.name AS sensor_name, sr.metric,
           sr.first_ts, sr.last_ts
    FROM spans sp
    JOIN sensors se ON se.run_id = sp.run_id
    JOIN series sr ON sr.sensor_id = se.sensor_id
),
at_start AS (
    SELECT p.*,
           CASE WHEN c.ts IS NULL THEN 0.0
                WHEN c.next_ts IS NULL THEN c.cum_energy_j
                WHEN c.is_gap THEN c.cum_energy_j
                ELSE c.cum_energy_j + epoch(p.start_ts - c.ts) *
                     (c.power_w + (c.power_w + (c.next_power_w - c.power_w) * epoch(p.start_ts - c.ts) / c.step_s)) / 2
           END AS e_start_j,
           CASE WHEN c.ts IS NULL THEN 0.0
                WHEN c.is_gap THEN c.cum_gap_s + epoch(p.start_ts - c.ts)
                ELSE c.cum_gap_s END AS g_start_s
    FROM pairs p
    ASOF LEFT JOIN power_cumulative c
      ON c.sensor_id = p.sensor_id AND c.metric = p.metric AND p.start_ts >= c.ts
),
at_end AS (
    SELECT p.*,
           CASE WHEN c.ts IS NULL THEN 0.0
                WHEN c.next_ts IS NULL THEN c.cum_energy_j
                WHEN c.is_gap THEN c.cum_energy_j
                ELSE c.cum_energy_j + epoch(p.end_ts - c.ts) *
                     (c.power_w + (c.power_w + (c.next_power_w - c.power_w) * epoch(p.end_ts - c.ts) / c.step_s)) / 2
           END AS e_end_j,
           CASE WHEN c.ts IS NULL THEN 0.0
                WHEN c.is_gap THEN c.cum_gap_s + epoch(p.end_ts - c.ts)
                ELSE c.cum_gap_s END AS g_end_s
    FROM at_start p
    ASOF LEFT JOIN power_cumulative c
      ON c.sensor_id = p.sensor_id AND c.metric = p.metric AND p.end_ts >= c.ts
)
SELECT run_id, span_id, parent_id, kind, name, start_ts, end_ts,
       epoch(end_ts - start_ts) AS duration_s,
       sensor_id, sensor_kind, sensor_name, metric,
       e_end_j - e_start_j AS energy_j,
       (e_end_j - e_start_j) / nullif(epoch(end_ts - start_ts), 0) AS avg_power_w,
       g_end_s - g_start_s AS gap_s,
       epoch(end_ts - start_ts)
         - greatest(0, epoch(least(end_ts, last_ts) - greatest(start_ts, first_ts))) AS uncovered_s
FROM at_end;
