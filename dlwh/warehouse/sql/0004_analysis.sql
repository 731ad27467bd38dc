-- dlwh warehouse, schema version 4: analysis. Imported summary sweeps (Zeus), the training-data view
-- the models learn from, and the fitted models themselves.
--
-- Steady state (README, "Analysis"): a collected run's numbers come from its spans, warm-up excluded:
--  * with two or more 'epoch' spans: every epoch but the first (by start time), and but epochs with
--    fewer child steps than the run's fullest (a run stopped mid-epoch);
--  * otherwise with 'step' spans: every step but the first 10 (by start time);
--  * runs with neither give no training row.
-- GPU energy of those spans is the span_energy integral (0002) of the 'power' metric of the run's GPU
-- sensors, from one tool per run (nvml before nvidia-smi before nvidia-smi-dmon).

-- Zeus NSDI'23 power trace rows (summary_power_<gpu>.csv), one per configuration and power limit.
CREATE TABLE IF NOT EXISTS zeus_power_summary (
    run_id            VARCHAR,
    file_sha256       VARCHAR NOT NULL,
    line              INTEGER NOT NULL,      -- line in the file (1 = header)
    gpu               VARCHAR NOT NULL,      -- 'A40', 'V100' (from --gpu or the file name)
    dataset           VARCHAR NOT NULL,
    network           VARCHAR NOT NULL,      -- as written in the file
    model             VARCHAR,               -- zoo name where the zoo knows the network
    batch_size        INTEGER NOT NULL,
    optimizer         VARCHAR,
    power_limit_w     DOUBLE NOT NULL,
    time_per_epoch_s  DOUBLE NOT NULL,       -- one full epoch
    avg_power_w       DOUBLE NOT NULL        -- GPU board power (NVML) averaged over the epoch
);

-- Zeus NSDI'23 train trace (summary_train.csv): epochs to reach a validation target.
CREATE TABLE IF NOT EXISTS zeus_train_summary (
    run_id            VARCHAR,
    file_sha256       VARCHAR NOT NULL,
    line              INTEGER NOT NULL,
    dataset           VARCHAR NOT NULL,
    network           VARCHAR NOT NULL,
    model             VARCHAR,
    batch_size        INTEGER NOT NULL,
    optimizer         VARCHAR,
    learning_rate     DOUBLE,
    seed_run          INTEGER,               -- repetition (seed) of the same configuration
    target_metric     DOUBLE NOT NULL,       -- validation metric target (accuracy, or WER for librispeech)
    target_epoch      INTEGER                -- first epoch reaching it; NULL = never reached
);

-- Zeus power-limit profiles (<GPU>+<model>+gpu<ids>.csv): one row per profiling window and GPU.
CREATE TABLE IF NOT EXISTS zeus_profile_windows (
    run_id            VARCHAR,
    file_sha256       VARCHAR NOT NULL,
    line              INTEGER NOT NULL,
    gpu               VARCHAR NOT NULL,
    network           VARCHAR,               -- from the file name
    model             VARCHAR,
    n_gpus            INTEGER NOT NULL,      -- GPUs in the file
    window_name       VARCHAR NOT NULL,
    power_limit_w     DOUBLE NOT NULL,
    start_s           DOUBLE,                -- window start on the profiler's own clock (s)
    start_ts          TIMESTAMP,             -- UTC, only when anchored with --start
    elapsed_s         DOUBLE NOT NULL,       -- window length (a fixed number of training steps)
    gpu_index         INTEGER NOT NULL,
    energy_j          DOUBLE NOT NULL,       -- this GPU's energy over the window (NVML)
    avg_power_w       DOUBLE NOT NULL        -- energy_j / elapsed_s
);

-- What dlwh knows about public workloads: zoo model, input shape (for the MAC count), epoch size.
-- Editable: UPDATE zeus_workloads SET samples_per_epoch = ... WHERE dataset = ...
CREATE TABLE IF NOT EXISTS zeus_workloads (
    dataset           VARCHAR NOT NULL,
    network           VARCHAR NOT NULL,
    model             VARCHAR,               -- zoo name; NULL: not in the zoo (MACs unknown)
    input_desc        VARCHAR,               -- input the workload trains on ('3x32x32', 'seq384'); NULL: zoo default
    samples_per_epoch BIGINT,                -- NULL: not published with the trace
    note              VARCHAR,
    PRIMARY KEY (dataset, network)
);

INSERT OR REPLACE INTO zeus_workloads VALUES
    ('cifar100', 'shufflenetv2', 'shufflenet_v2_x1_0', '3x32x32', 50000, 'CIFAR-100 train split, 32x32 images'),
    ('imagenet', 'resnet50', 'resnet50', '3x224x224', 1281167, 'ImageNet-1k train split'),
    ('squad', 'bert_base_uncased', 'bert_base', 'seq384', NULL, 'SQuAD fine-tuning, 384-token sequences'),
    ('sentiment140', 'bert_base_uncased', 'bert_base', NULL, NULL, 'sequence length not published: zoo default'),
    ('librispeech', 'deepspeech2', NULL, NULL, NULL, 'not in the zoo'),
    ('movielens-1m', 'ncf', NULL, NULL, NULL, 'not in the zoo');

-- Fitted models (dlwh fit); predict reads them back without refitting.
CREATE TABLE IF NOT EXISTS fitted_models (
    model_id          VARCHAR PRIMARY KEY,   -- '<gpu scope>/<target>/<algo>'
    gpu_scope         VARCHAR NOT NULL,      -- a GPU name, or '*' for a model over all GPUs
    target            VARCHAR NOT NULL,      -- time_per_epoch_s, avg_power_w, energy_per_epoch_j
    algo              VARCHAR NOT NULL,      -- gbr, poly, ols, physics
    fitted_at         TIMESTAMP NOT NULL,    -- UTC
    data_sha256       VARCHAR NOT NULL,      -- hash of the training rows used
    n_rows            INTEGER NOT NULL,
    features          JSON,                  -- feature names, in order
    feature_ranges    JSON,                  -- {feature: [min, max]} of the training rows, categories seen
    metrics           JSON,                  -- cross-validated {cv, mape_pct, r2, n}
    params            JSON,                  -- readable parameters (physics) or hyper-parameters
    summary           VARCHAR,               -- statsmodels summary text (ols)
    versions          JSON,                  -- library versions the blob was written with
    blob              BLOB NOT NULL          -- the pickled estimator
);

-- Cross-validated accuracy of every (target, algorithm) from the latest dlwh fit of each GPU scope.
CREATE TABLE IF NOT EXISTS fit_scores (
    gpu_scope         VARCHAR NOT NULL,
    target            VARCHAR NOT NULL,
    algo              VARCHAR NOT NULL,
    cv                VARCHAR NOT NULL,      -- kfold, group-model, group-power-limit
    n                 INTEGER NOT NULL,      -- rows predicted
    mape_pct          DOUBLE,
    r2                DOUBLE,
    fitted_at         TIMESTAMP NOT NULL,
    PRIMARY KEY (gpu_scope, target, algo, cv)
);

-- GPU names as the models use them: vendor words and memory/form-factor suffixes dropped, upper case
-- ('NVIDIA A100-SXM4-80GB' -> 'A100', 'Tesla V100-SXM2-16GB' -> 'V100', 'NVIDIA H200' -> 'H200').
-- Python twin: dlwh.analysis.data.normalise_gpu.
CREATE OR REPLACE MACRO normalise_gpu(name) AS
    nullif(upper(trim(regexp_replace(
        regexp_replace(
            regexp_replace(name, '(?i)\b(nvidia|tesla|geforce|quadro)\b', '', 'g'),
            '(?i)[- ](sxm\d*|pcie|\d+\s*gb|hbm\d*e?|nvl|mig)\b.*$', ''),
        '\s+', ' ', 'g'))), '');

-- Steady-state spans of each collected run (see the rule at the top). An epoch with fewer child steps
-- than the run's fullest epoch (a run stopped mid-epoch) is left out too. steps: child step spans.
CREATE OR REPLACE VIEW steady_spans AS
WITH children AS (
    SELECT run_id, parent_id AS span_id, count(*) AS steps
    FROM spans WHERE kind = 'step' AND parent_id IS NOT NULL GROUP BY ALL
),
ranked AS (
    SELECT sp.run_id, sp.span_id, sp.kind, sp.start_ts, sp.end_ts, sp.attrs, c.steps,
           row_number() OVER (PARTITION BY sp.run_id, sp.kind ORDER BY sp.start_ts, sp.span_id) AS k,
           count(*) OVER (PARTITION BY sp.run_id, sp.kind) AS n,
           max(c.steps) OVER (PARTITION BY sp.run_id, sp.kind) AS most_steps
    FROM spans sp LEFT JOIN children c USING (run_id, span_id)
    WHERE sp.kind IN ('epoch', 'step')
),
epoch_runs AS (SELECT DISTINCT run_id FROM ranked WHERE kind = 'epoch' AND n >= 2)
SELECT run_id, span_id, kind AS work_unit, start_ts, end_ts,
       epoch(end_ts - start_ts) AS duration_s,
       try_cast(json_extract_string(attrs, '$.samples') AS DOUBLE) AS samples,
       steps
FROM ranked
WHERE (kind = 'epoch' AND n >= 2 AND k > 1 AND (most_steps IS NULL OR steps = most_steps))
   OR (kind = 'step' AND k > 10 AND run_id NOT IN (SELECT run_id FROM epoch_runs));

-- Per collected run: the GPU sensors used (one tool), the GPU name and the power limit.
CREATE OR REPLACE VIEW run_gpus AS
WITH power_sensors AS (
    SELECT se.run_id, se.sensor_id, se.tool, se.device_name,
           CASE se.tool WHEN 'nvml' THEN 0 WHEN 'nvidia-smi' THEN 1 WHEN 'nvidia-smi-dmon' THEN 2 ELSE 3 END AS pref
    FROM sensors se
    WHERE se.kind = 'gpu'
      AND EXISTS (SELECT 1 FROM samples s WHERE s.sensor_id = se.sensor_id AND s.metric = 'power')
),
best AS (SELECT run_id, min(pref) AS pref FROM power_sensors GROUP BY run_id),
chosen AS (SELECT p.* FROM power_sensors p JOIN best b USING (run_id, pref)),
limits AS (
    SELECT c.run_id, median(s.value) AS limit_w
    FROM chosen c JOIN samples s USING (sensor_id)
    WHERE s.metric IN ('enforced_power_limit', 'power_limit') AND s.value IS NOT NULL
    GROUP BY c.run_id
)
SELECT c.run_id,
       list(c.sensor_id ORDER BY c.sensor_id) AS sensor_ids,
       any_value(c.tool) AS tool,
       count(*) AS n_gpus,
       normalise_gpu(coalesce(json_extract_string(any_value(r.manifest_json), '$.gpus[0].name'),
                              min(c.device_name))) AS gpu,
       any_value(l.limit_w) AS measured_limit_w
FROM chosen c
JOIN runs r USING (run_id)
LEFT JOIN limits l USING (run_id)
GROUP BY c.run_id;

-- One row per collected run with steady spans and GPU power: time, energy and samples per work unit.
CREATE OR REPLACE VIEW run_measurements AS
WITH unit_energy AS (
    SELECT st.run_id, st.span_id, st.work_unit, st.duration_s, st.samples, st.steps,
           sum(se.energy_j) AS energy_j,
           max(se.uncovered_s) AS uncovered_s
    FROM steady_spans st
    JOIN run_gpus g USING (run_id)
    JOIN span_energy se ON se.run_id = st.run_id AND se.span_id = st.span_id
         AND se.metric = 'power' AND list_contains(g.sensor_ids, se.sensor_id)
    GROUP BY ALL
),
tags AS (
    SELECT run_id,
           any_value(value) FILTER (WHERE key = 'model') AS model_tag,
           any_value(value) FILTER (WHERE key = 'dataset') AS dataset,
           any_value(value) FILTER (WHERE key = 'optimizer') AS optimizer,
           any_value(value) FILTER (WHERE key = 'precision') AS precision,
           try_cast(any_value(value) FILTER (WHERE key = 'batch_size') AS INTEGER) AS batch_size,
           try_cast(any_value(value) FILTER (WHERE key = 'power_limit_w') AS DOUBLE) AS power_limit_w,
           try_cast(any_value(value) FILTER (WHERE key = 'samples_per_epoch') AS DOUBLE) AS samples_per_epoch,
           try_cast(any_value(value) FILTER (WHERE key = 'steps_per_epoch') AS DOUBLE) AS steps_per_epoch
    FROM run_tags GROUP BY run_id
)
SELECT u.run_id, u.work_unit,
       count(*) AS n_units,
       sum(u.duration_s) / count(*) AS time_per_unit_s,
       sum(u.energy_j) / count(*) AS energy_per_unit_j,
       sum(u.energy_j) / nullif(sum(u.duration_s), 0) / any_value(g.n_gpus) AS avg_power_w,
       coalesce(avg(u.samples),
                CASE WHEN u.work_unit = 'step' THEN any_value(t.batch_size)
                     ELSE coalesce(any_value(t.samples_per_epoch), avg(u.steps) * any_value(t.batch_size)) END)
           AS samples_per_unit,
       max(u.uncovered_s) AS max_uncovered_s,
       any_value(g.gpu) AS gpu, any_value(g.n_gpus) AS n_gpus, any_value(g.tool) AS tool,
       coalesce(any_value(t.power_limit_w), any_value(g.measured_limit_w)) AS power_limit_w,
       any_value(t.model_tag) AS model_tag, any_value(t.dataset) AS dataset,
       any_value(t.optimizer) AS optimizer, any_value(t.precision) AS precision,
       any_value(t.batch_size) AS batch_size, any_value(t.samples_per_epoch) AS samples_per_epoch,
       any_value(t.steps_per_epoch) AS steps_per_epoch
FROM unit_energy u
JOIN run_gpus g USING (run_id)
LEFT JOIN tags t USING (run_id)
GROUP BY u.run_id, u.work_unit;

-- MAC count of a Zeus workload: counted at its input when the warehouse has that count, else the zoo
-- default input's count scaled by the input size (pixels H x W, or tokens), marked 'scaled'.
CREATE OR REPLACE VIEW zeus_workload_complexity AS
WITH cand AS (
    SELECT w.dataset, w.network, w.model, w.input_desc AS wanted, w.samples_per_epoch,
           c.input_desc, c.macs_per_sample, c.params, z.default_input,
           CASE WHEN c.input_desc = w.input_desc THEN 0 WHEN c.input_desc = z.default_input THEN 1 ELSE 2 END AS pref
    FROM zeus_workloads w
    LEFT JOIN model_complexity c ON c.model = w.model
    LEFT JOIN zoo_models z ON z.model = w.model
),
best AS (
    SELECT *, row_number() OVER (PARTITION BY dataset, network ORDER BY pref, input_desc) AS r FROM cand
),
sized AS (
    SELECT *,
           CASE WHEN regexp_matches(input_desc, '^\d+x\d+x\d+$')
                THEN try_cast(split_part(input_desc, 'x', 2) AS DOUBLE) * try_cast(split_part(input_desc, 'x', 3) AS DOUBLE)
                WHEN regexp_matches(input_desc, '^seq\d+$') THEN try_cast(substr(input_desc, 4) AS DOUBLE) END AS have_size,
           CASE WHEN regexp_matches(wanted, '^\d+x\d+x\d+$')
                THEN try_cast(split_part(wanted, 'x', 2) AS DOUBLE) * try_cast(split_part(wanted, 'x', 3) AS DOUBLE)
                WHEN regexp_matches(wanted, '^seq\d+$') THEN try_cast(substr(wanted, 4) AS DOUBLE) END AS want_size
    FROM best WHERE r = 1
)
SELECT dataset, network, model, samples_per_epoch, params,
       CASE WHEN macs_per_sample IS NULL THEN NULL
            WHEN wanted IS NULL OR wanted = input_desc THEN macs_per_sample::DOUBLE
            WHEN have_size > 0 AND want_size > 0 THEN macs_per_sample * want_size / have_size END AS macs_per_sample,
       CASE WHEN macs_per_sample IS NULL THEN NULL
            WHEN wanted IS NULL THEN 'counted at ' || input_desc || ' (input not published)'
            WHEN wanted = input_desc THEN 'counted at ' || input_desc
            WHEN have_size > 0 AND want_size > 0 THEN 'scaled from ' || input_desc || ' to ' || wanted END AS macs_source
FROM sized;

-- The training data: one row per measured configuration (GPU, model, batch size, precision, power
-- limit, ...) with its targets. time_per_epoch_s and energy_per_epoch_j are per work_unit: 'epoch';
-- 'window' for Zeus profiles (one profiling window: a fixed number of steps); 'step' for runs with
-- step spans but no samples_per_epoch / steps_per_epoch tag. avg_power_w is per GPU; energy is over
-- all n_gpus GPUs. config names the configuration the row measures at one power limit.
CREATE OR REPLACE VIEW training_data AS
WITH zeus AS (
    SELECT 'zeus-summary' AS source, p.file_sha256 || ':' || p.line AS source_id, p.gpu,
           coalesce(w.model, p.model) AS model, p.dataset, p.optimizer, CAST(NULL AS VARCHAR) AS precision,
           p.batch_size, p.power_limit_w, 1 AS n_gpus, w.macs_per_sample, w.params::DOUBLE AS params, w.macs_source,
           'epoch' AS work_unit, w.samples_per_epoch::DOUBLE AS samples_per_epoch,
           p.time_per_epoch_s, p.avg_power_w, p.time_per_epoch_s * p.avg_power_w AS energy_per_epoch_j
    FROM zeus_power_summary p
    LEFT JOIN zeus_workload_complexity w USING (dataset, network)
),
profile AS (
    SELECT 'zeus-profile' AS source, file_sha256 || ':' || line AS source_id, any_value(gpu) AS gpu,
           any_value(model) AS model, CAST(NULL AS VARCHAR) AS dataset, CAST(NULL AS VARCHAR) AS optimizer,
           CAST(NULL AS VARCHAR) AS precision, CAST(NULL AS INTEGER) AS batch_size,
           any_value(power_limit_w) AS power_limit_w, any_value(n_gpus) AS n_gpus,
           'window' AS work_unit, CAST(NULL AS DOUBLE) AS samples_per_epoch,
           any_value(elapsed_s) AS time_per_epoch_s, avg(avg_power_w) AS avg_power_w,
           sum(energy_j) AS energy_per_epoch_j, any_value(file_sha256) AS file_sha256
    FROM zeus_profile_windows GROUP BY file_sha256, line
),
runs_m AS (
    SELECT 'run' AS source, m.run_id AS source_id, m.gpu,
           coalesce(rc.model, a.model, lower(trim(m.model_tag))) AS model, m.dataset, m.optimizer, m.precision,
           m.batch_size, m.power_limit_w, m.n_gpus,
           rc.macs_per_sample::DOUBLE AS macs_per_sample, rc.params::DOUBLE AS params,
           CASE WHEN rc.macs_per_sample IS NOT NULL THEN 'counted at ' || rc.input_desc END AS macs_source,
           CASE WHEN m.work_unit = 'epoch' OR m.samples_per_epoch IS NOT NULL OR m.steps_per_epoch IS NOT NULL
                THEN 'epoch' ELSE 'step' END AS work_unit,
           coalesce(CASE WHEN m.work_unit = 'epoch' THEN m.samples_per_unit END, m.samples_per_epoch,
                    m.steps_per_epoch * m.samples_per_unit) AS samples_per_epoch,
           m.work_unit AS measured_unit, m.time_per_unit_s, m.energy_per_unit_j, m.samples_per_unit, m.avg_power_w
    FROM run_measurements m
    LEFT JOIN run_complexity rc USING (run_id)
    LEFT JOIN model_aliases a ON a.alias_key = regexp_replace(lower(m.model_tag), '[^a-z0-9]', '', 'g')
),
runs_t AS (
    SELECT *,
           CASE WHEN measured_unit = work_unit THEN time_per_unit_s
                WHEN samples_per_epoch IS NOT NULL AND samples_per_unit > 0
                THEN time_per_unit_s * samples_per_epoch / samples_per_unit END AS time_per_epoch_s,
           CASE WHEN measured_unit = work_unit THEN energy_per_unit_j
                WHEN samples_per_epoch IS NOT NULL AND samples_per_unit > 0
                THEN energy_per_unit_j * samples_per_epoch / samples_per_unit END AS energy_per_epoch_j
    FROM runs_m
),
unioned AS (
    SELECT source, source_id, gpu, model, dataset, optimizer, precision, batch_size, power_limit_w, n_gpus,
           macs_per_sample, params, macs_source, work_unit, samples_per_epoch,
           time_per_epoch_s, avg_power_w, energy_per_epoch_j, CAST(NULL AS VARCHAR) AS config_extra
    FROM zeus
    UNION ALL
    SELECT p.source, p.source_id, p.gpu, p.model, p.dataset, p.optimizer, p.precision, p.batch_size,
           p.power_limit_w, p.n_gpus, c.macs_per_sample::DOUBLE, c.params::DOUBLE,
           CASE WHEN c.macs_per_sample IS NOT NULL THEN 'counted at ' || c.input_desc END,
           p.work_unit, p.samples_per_epoch, p.time_per_epoch_s, p.avg_power_w, p.energy_per_epoch_j,
           substr(p.file_sha256, 1, 12)
    FROM profile p
    LEFT JOIN zoo_models z ON z.model = p.model
    LEFT JOIN model_complexity c ON c.model = p.model AND c.input_desc = z.default_input AND c.batch_size = 1
    UNION ALL
    SELECT source, source_id, gpu, model, dataset, optimizer, precision, batch_size, power_limit_w, n_gpus,
           macs_per_sample, params, macs_source, work_unit, samples_per_epoch,
           time_per_epoch_s, avg_power_w, energy_per_epoch_j, CAST(NULL AS VARCHAR)
    FROM runs_t
)
SELECT source, source_id, gpu, model, dataset, optimizer, precision, batch_size, power_limit_w, n_gpus,
       macs_per_sample, params, macs_source, work_unit, samples_per_epoch,
       samples_per_epoch / time_per_epoch_s AS throughput_sps,
       time_per_epoch_s, avg_power_w, energy_per_epoch_j,
       energy_per_epoch_j / samples_per_epoch AS energy_per_sample_j,
       concat_ws('/', gpu, coalesce(dataset, '-'), coalesce(model, '-'), coalesce(CAST(batch_size AS VARCHAR), '-'),
                 coalesce(optimizer, '-'), coalesce(precision, '-'), CAST(n_gpus AS VARCHAR) || 'gpu', work_unit,
                 config_extra) AS config
FROM unioned
WHERE time_per_epoch_s > 0 AND avg_power_w > 0 AND power_limit_w > 0 AND gpu IS NOT NULL;
