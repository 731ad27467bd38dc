-- dlwh warehouse, schema version 6: results of `dlwh bench` runs (run tag workload = 'dlwh-bench').
--
-- Steady state (docs/bench.md): a bench run has two or more epoch spans; the first (by start time)
-- is the warm-up, every later one is the steady state (the rule of steady_spans in 0004 for runs with
-- epochs). Epoch spans synchronise the GPU at their edges, so their times hold with or without --sync.
--  * throughput_samples_per_s = steady samples / steady seconds (samples, steps: epoch span attrs);
--  * time_per_step_s = steady seconds / steady steps;
--  * energy: the span_energy integral (0002) of the 'power' metric of the run's GPU sensors from one
--    tool (nvml before nvidia-smi before nvidia-smi-dmon), summed over those sensors (bench records
--    only the GPU it trains on); energy_per_sample_j = steady energy / steady samples;
--  * warm-up (epoch 0) time, steps and energy are reported in their own columns.
-- macs_per_sample (forward pass, MAC operators only) and params come from run_complexity (0003).

CREATE OR REPLACE VIEW bench_results AS
WITH tags AS (
    SELECT run_id,
           any_value(value) FILTER (WHERE key = 'model') AS model_tag,
           try_cast(any_value(value) FILTER (WHERE key = 'batch_size') AS INTEGER) AS batch_size,
           any_value(value) FILTER (WHERE key = 'precision') AS precision,
           any_value(value) FILTER (WHERE key = 'device') AS device,
           try_cast(any_value(value) FILTER (WHERE key = 'sync') AS BOOLEAN) AS sync,
           try_cast(any_value(value) FILTER (WHERE key = 'layers') AS BOOLEAN) AS layers,
           try_cast(any_value(value) FILTER (WHERE key = 'power_limit_w') AS DOUBLE) AS power_limit_tag_w,
           any_value(value) FILTER (WHERE key = 'input') AS input
    FROM run_tags
    GROUP BY run_id
    HAVING any_value(value) FILTER (WHERE key = 'workload') = 'dlwh-bench'
),
epochs AS (
    SELECT sp.run_id, sp.span_id, sp.start_ts, sp.end_ts,
           epoch(sp.end_ts - sp.start_ts) AS duration_s,
           try_cast(json_extract_string(sp.attrs, '$.steps') AS BIGINT) AS steps,
           try_cast(json_extract_string(sp.attrs, '$.samples') AS BIGINT) AS samples,
           row_number() OVER (PARTITION BY sp.run_id ORDER BY sp.start_ts, sp.span_id) AS k
    FROM spans sp JOIN tags USING (run_id)
    WHERE sp.kind = 'epoch'
),
gpu_sensors AS (
    SELECT se.run_id, se.sensor_id, se.tool, se.device_name,
           CASE se.tool WHEN 'nvml' THEN 0 WHEN 'nvidia-smi' THEN 1 WHEN 'nvidia-smi-dmon' THEN 2 ELSE 3 END AS pref
    FROM sensors se JOIN tags USING (run_id)
    WHERE se.kind = 'gpu'
      AND EXISTS (SELECT 1 FROM samples s WHERE s.sensor_id = se.sensor_id AND s.metric = 'power')
),
chosen AS (
    SELECT g.* FROM gpu_sensors g
    WHERE g.pref = (SELECT min(pref) FROM gpu_sensors h WHERE h.run_id = g.run_id)
),
gpus AS (
    SELECT run_id, count(*) AS n_gpus, any_value(tool) AS power_tool, min(device_name) AS gpu
    FROM chosen GROUP BY run_id
),
limits AS (
    SELECT c.run_id, median(s.value) AS measured_limit_w
    FROM chosen c JOIN samples s USING (sensor_id)
    WHERE s.metric IN ('enforced_power_limit', 'power_limit') AND s.value IS NOT NULL
    GROUP BY c.run_id
),
epoch_energy AS (
    SELECT e.run_id, e.span_id, e.k, e.duration_s, e.steps, e.samples,
           sum(se.energy_j) AS energy_j,
           count(se.sensor_id) AS n_sensors,
           max(se.uncovered_s) AS uncovered_s
    FROM epochs e
    LEFT JOIN chosen c ON c.run_id = e.run_id
    LEFT JOIN span_energy se ON se.run_id = e.run_id AND se.span_id = e.span_id
         AND se.sensor_id = c.sensor_id AND se.metric = 'power'
    GROUP BY ALL
),
per_run AS (
    SELECT run_id,
           count(*) FILTER (WHERE k > 1) AS steady_epochs,
           sum(steps) FILTER (WHERE k > 1) AS steady_steps,
           sum(samples) FILTER (WHERE k > 1) AS steady_samples,
           sum(duration_s) FILTER (WHERE k > 1) AS steady_s,
           sum(energy_j) FILTER (WHERE k > 1) AS steady_energy_j,
           max(uncovered_s) FILTER (WHERE k > 1) AS steady_uncovered_s,
           bool_and(n_sensors > 0) FILTER (WHERE k > 1) AS has_power,
           any_value(duration_s) FILTER (WHERE k = 1) AS warmup_s,
           any_value(steps) FILTER (WHERE k = 1) AS warmup_steps,
           any_value(energy_j) FILTER (WHERE k = 1) AS warmup_energy_j
    FROM epoch_energy GROUP BY run_id
)
SELECT t.run_id,
       coalesce(rc.model, t.model_tag) AS model,
       t.batch_size, t.precision, t.device, t.sync, t.layers,
       g.gpu, g.n_gpus, g.power_tool,
       coalesce(t.power_limit_tag_w, l.measured_limit_w) AS power_limit_w,
       p.steady_epochs, p.steady_steps, p.steady_samples, p.steady_s,
       p.steady_samples / nullif(p.steady_s, 0) AS throughput_samples_per_s,
       p.steady_s / nullif(p.steady_steps, 0) AS time_per_step_s,
       CASE WHEN p.has_power THEN p.steady_energy_j END AS steady_energy_j,
       CASE WHEN p.has_power THEN p.steady_energy_j / nullif(p.steady_s, 0) / g.n_gpus END AS avg_power_w,
       CASE WHEN p.has_power THEN p.steady_energy_j / nullif(p.steady_samples, 0) END AS energy_per_sample_j,
       p.steady_uncovered_s,
       p.warmup_s, p.warmup_steps,
       CASE WHEN p.has_power THEN p.warmup_energy_j END AS warmup_energy_j,
       rc.macs_per_sample, rc.params, rc.input_desc,
       rc.macs_per_sample * p.steady_samples / nullif(p.steady_s, 0) / 1e12 AS forward_tmacs_per_s
FROM tags t
JOIN per_run p USING (run_id)
LEFT JOIN gpus g USING (run_id)
LEFT JOIN limits l USING (run_id)
LEFT JOIN run_complexity rc USING (run_id)
WHERE p.steady_epochs >= 1;
