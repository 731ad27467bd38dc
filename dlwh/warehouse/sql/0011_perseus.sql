-- dlwh warehouse, schema version 11: Perseus SOSP'24 power-limit sweeps (<GPU>__zeus_global.csv).
-- One row per (model, power limit) of pipeline-parallel training; energy per iteration is SUMMED over
-- the dp x tp x pp GPUs, avg_power_w is per GPU. training_data gains them as work unit 'iteration'
-- (time and energy per iteration in the *_per_epoch_* columns, energy over all n_gpus GPUs).

CREATE TABLE IF NOT EXISTS perseus_iterations (
    run_id                 VARCHAR,
    file_sha256            VARCHAR NOT NULL,
    line                   INTEGER NOT NULL,      -- line in the file (1 = header)
    gpu                    VARCHAR NOT NULL,      -- from --gpu or the file name
    model                  VARCHAR NOT NULL,      -- model_name, lower case
    partition_method       VARCHAR,
    batch_size             INTEGER NOT NULL,      -- global batch
    dp                     INTEGER NOT NULL,
    tp                     INTEGER NOT NULL,
    pp                     INTEGER NOT NULL,
    microbatch_size        INTEGER NOT NULL,
    num_microbatches       INTEGER NOT NULL,
    n_gpus                 INTEGER NOT NULL,      -- dp * tp * pp
    power_limit_w          DOUBLE NOT NULL,       -- the same on every GPU
    time_per_iteration_s   DOUBLE NOT NULL,
    energy_per_iteration_j DOUBLE NOT NULL,       -- summed over all n_gpus GPUs
    avg_power_w            DOUBLE NOT NULL,       -- per GPU: energy / time / n_gpus
    optimal_power_limit_w  DOUBLE                 -- the limit Zeus's cost (eta 0.5) picked, as published
);

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
perseus AS (
    SELECT 'perseus' AS source, file_sha256 || ':' || line AS source_id, gpu, model,
           CAST(NULL AS VARCHAR) AS dataset, CAST(NULL AS VARCHAR) AS optimizer, CAST(NULL AS VARCHAR) AS precision,
           batch_size, power_limit_w, n_gpus, 'iteration' AS work_unit, CAST(NULL AS DOUBLE) AS samples_per_epoch,
           time_per_iteration_s AS time_per_epoch_s, avg_power_w, energy_per_iteration_j AS energy_per_epoch_j,
           'dp' || dp || 'tp' || tp || 'pp' || pp AS config_extra
    FROM perseus_iterations
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
           CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS VARCHAR), work_unit, samples_per_epoch,
           time_per_epoch_s, avg_power_w, energy_per_epoch_j, config_extra
    FROM perseus
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
