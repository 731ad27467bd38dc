-- dlwh warehouse, schema version 5: carbon intensity, emissions views, and other tools' records
-- (CodeCarbon, carbontracker, the CUDA profiler nvprof).
--
-- Emissions rule (README, "Carbon"):
--  * Energy is the same integral as run_energy / span_energy (0002): E(t) is the running integral of a
--    sensor's power curve, linear inside a step, flat across gaps.
--  * Each run or span window [a, b] is cut at every change of the carbon intensity in force (the start
--    and end of every intensity period of the run's zone); each piece [t0, t1] gets E(t1) - E(t0)
--    and the intensity in force at t0 (an as-of join). Emissions = sum of piece kWh x PUE x gCO2eq/kWh.
--  * The intensity in force, in order: a run tag intensity_g_per_kwh (a constant); the zone's measured
--    or estimated value whose period holds t (carbon_intensity_periods); the zone's (else its
--    country's) shipped yearly average; the setting intensity_g_per_kwh. The zone is the run tag
--    'zone', else the setting 'zone'. PUE is the run tag 'pue', else the setting 'pue', else 1.0.

-- Warehouse-wide settings, text values (dlwh carbon set KEY VALUE): pue, zone, intensity_g_per_kwh,
-- intensity_max_age_h.
CREATE TABLE IF NOT EXISTS settings (
    key           VARCHAR PRIMARY KEY,
    value         VARCHAR NOT NULL,
    updated_at    TIMESTAMP                -- UTC
);

-- Grid carbon intensity by zone and time.
CREATE TABLE IF NOT EXISTS carbon_intensity (
    zone                 VARCHAR NOT NULL,   -- Electricity Maps zone key, upper case: DE, KR, US-CAL-CISO
    ts                   TIMESTAMP NOT NULL, -- UTC start of the period the value holds for
    period_s             DOUBLE,             -- length of that period (3600 for hourly data); NULL: until
                                             -- the next value, at most intensity_max_age_h (default 3 h)
    intensity_g_per_kwh  DOUBLE NOT NULL,    -- gCO2eq/kWh
    emission_factor_type VARCHAR,            -- lifecycle or direct
    is_estimated         BOOLEAN,            -- true: estimated, false: measured, NULL: not said
    estimation_method    VARCHAR,
    is_forecast          BOOLEAN NOT NULL DEFAULT false,
    source               VARCHAR NOT NULL,   -- electricitymaps-api, electricitymaps-json, electricitymaps-csv
    updated_at           TIMESTAMP,          -- UTC, when the provider last changed the value
    fetched_at           TIMESTAMP,          -- UTC, when dlwh fetched or ingested it
    file_sha256          VARCHAR             -- the ingested file; NULL for values fetched from the API
);

-- Yearly average intensity per zone or country, shipped with dlwh (dlwh/carbon/data/yearly_intensity.csv
-- holds the same rows with their full reference).
CREATE TABLE IF NOT EXISTS carbon_intensity_yearly (
    zone                 VARCHAR NOT NULL,
    year                 INTEGER NOT NULL,
    intensity_g_per_kwh  DOUBLE NOT NULL,    -- gCO2eq/kWh
    emission_factor_type VARCHAR,
    source               VARCHAR NOT NULL,
    PRIMARY KEY (zone, year)
);

INSERT OR REPLACE INTO carbon_intensity_yearly VALUES
    ('AT', 2024, 119, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('AU', 2024, 489, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('BE', 2024, 153, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('BR', 2024, 91, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('CA', 2024, 132, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('CH', 2024, 42, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('CN', 2024, 513, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('CZ', 2024, 447, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('DE', 2024, 341, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('DK', 2024, 136, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('ES', 2024, 129, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('FI', 2024, 80, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('FR', 2024, 33, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('GB', 2024, 175, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('IE', 2024, 352, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('IN', 2024, 614, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('IS', 2024, 28, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('IT', 2024, 267, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('JP', 2024, 464, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('KR', 2024, 423, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('MX', 2024, 392, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('NL', 2024, 251, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('NO', 2024, 33, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('NZ', 2024, 112, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('PL', 2024, 581, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('PT', 2024, 100, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('SE', 2024, 23, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('SG', 2024, 485, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('TW', 2024, 525, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('US', 2024, 409, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('US-CAL-CISO', 2024, 229, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('US-MIDA-PJM', 2024, 403, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('US-NW-BPAT', 2024, 109, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('US-NY-NYIS', 2024, 302, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('US-TEX-ERCO', 2024, 377, 'lifecycle', 'Electricity Maps 2024 yearly average'),
    ('ZA', 2024, 712, 'lifecycle', 'Electricity Maps 2024 yearly average');

-- CodeCarbon emissions.csv rows (every version's columns; absent ones are NULL). CodeCarbon's energies
-- already include its own PUE; its timestamps are local time (converted to UTC here).
CREATE TABLE IF NOT EXISTS codecarbon_emissions (
    run_id                  VARCHAR NOT NULL,
    file_sha256             VARCHAR NOT NULL,
    line                    INTEGER,        -- line in the file
    ts                      TIMESTAMP,      -- UTC time the row was written
    project_name            VARCHAR,
    codecarbon_run_id       VARCHAR,        -- CodeCarbon's own run_id (empty in some files)
    experiment_id           VARCHAR,
    tracker_run             VARCHAR,        -- codecarbon_run_id, else 'started <UTC start>' (ts - duration)
    duration_s              DOUBLE,         -- since the tracker started
    emissions_kg            DOUBLE,         -- kgCO2eq since the tracker started
    emissions_rate_kg_per_s DOUBLE,
    cpu_power_w             DOUBLE,
    gpu_power_w             DOUBLE,
    ram_power_w             DOUBLE,
    cpu_energy_kwh          DOUBLE,         -- cumulative since the tracker started
    gpu_energy_kwh          DOUBLE,
    ram_energy_kwh          DOUBLE,
    energy_consumed_kwh     DOUBLE,
    water_consumed_l        DOUBLE,
    country_name            VARCHAR,
    country_iso_code        VARCHAR,
    region                  VARCHAR,
    cloud_provider          VARCHAR,
    cloud_region            VARCHAR,
    os                      VARCHAR,
    python_version          VARCHAR,
    codecarbon_version      VARCHAR,
    cpu_count               DOUBLE,
    cpu_model               VARCHAR,
    gpu_count               DOUBLE,
    gpu_model               VARCHAR,
    longitude               DOUBLE,
    latitude                DOUBLE,
    ram_total_size_gb       DOUBLE,
    tracking_mode           VARCHAR,
    cpu_utilization_pct     DOUBLE,
    gpu_utilization_pct     DOUBLE,
    ram_utilization_pct     DOUBLE,
    ram_used_gb             DOUBLE,
    on_cloud                VARCHAR,
    pue                     DOUBLE,
    wue                     DOUBLE,         -- L/kWh
    intensity_g_per_kwh     DOUBLE          -- implied: emissions_kg * 1000 / energy_consumed_kwh
);

-- carbontracker: its log files and stdout. kind: epoch, intensity, intensity_forecast, actual, predicted.
CREATE TABLE IF NOT EXISTS carbontracker_records (
    run_id              VARCHAR NOT NULL,
    file_sha256         VARCHAR NOT NULL,
    line                INTEGER,
    kind                VARCHAR NOT NULL,
    ts                  TIMESTAMP,          -- UTC time of the line (NULL for stdout, which has no times)
    epoch               INTEGER,            -- epoch number (kind epoch)
    epochs              INTEGER,            -- epochs covered (actual / predicted)
    duration_s          DOUBLE,             -- epoch length, summary time, or forecast horizon
    energy_kwh          DOUBLE,             -- includes carbontracker's PUE
    co2eq_g             DOUBLE,
    gpu_power_w         DOUBLE,             -- average power over the epoch, summed over devices (NULL: [None])
    cpu_power_w         DOUBLE,
    gpu_power_list      VARCHAR,            -- per-device values as printed
    cpu_power_list      VARCHAR,
    intensity_g_per_kwh DOUBLE,
    intensities         VARCHAR,            -- the fetched intensities as printed
    location            VARCHAR,
    equivalent          VARCHAR,            -- e.g. '0.000026 km travelled by car'
    pue                 DOUBLE,
    version             VARCHAR,
    components          VARCHAR
);

-- nvprof --print-gpu-trace: one row per kernel, memcpy or memset.
CREATE TABLE IF NOT EXISTS kernels (
    run_id              VARCHAR NOT NULL,
    file_sha256         VARCHAR NOT NULL,
    line                INTEGER,
    kind                VARCHAR NOT NULL,   -- kernel, memcpy, memset
    start_s             DOUBLE,             -- since the profiler started
    start_ts            TIMESTAMP,          -- UTC: start_s from --start or the run.json start
    duration_s          DOUBLE,
    name                VARCHAR NOT NULL,
    grid_x INTEGER, grid_y INTEGER, grid_z INTEGER,
    block_x INTEGER, block_y INTEGER, block_z INTEGER,
    registers_per_thread INTEGER,
    static_smem_bytes   DOUBLE,
    dynamic_smem_bytes  DOUBLE,
    size_bytes          DOUBLE,             -- bytes moved by a memcpy / memset
    throughput_bytes_per_s DOUBLE,
    src_mem_type        VARCHAR,
    dst_mem_type        VARCHAR,
    device              VARCHAR,
    context             INTEGER,
    stream              INTEGER,
    correlation_id      BIGINT
);

-- nvprof --metrics / --events: one row per device, kernel and metric.
CREATE TABLE IF NOT EXISTS kernel_metrics (
    run_id              VARCHAR NOT NULL,
    file_sha256         VARCHAR NOT NULL,
    line                INTEGER,
    device              VARCHAR,
    kernel              VARCHAR NOT NULL,
    invocations         BIGINT,
    metric              VARCHAR NOT NULL,   -- flop_count_sp, dram_read_throughput, ...
    description         VARCHAR,
    unit                VARCHAR,            -- '%', 'B/s', 'B', '' (a count or ratio), 'level' (0-10)
    min_value           DOUBLE,             -- in unit (throughputs in B/s, sizes in B)
    max_value           DOUBLE,
    avg_value           DOUBLE,
    min_text            VARCHAR,            -- as printed, e.g. 'Idle (0)', '1.1655GB/s'
    max_text            VARCHAR,
    avg_text            VARCHAR
);

-- nvprof's default summary mode: time per kernel / API call.
CREATE TABLE IF NOT EXISTS kernel_summary (
    run_id              VARCHAR NOT NULL,
    file_sha256         VARCHAR NOT NULL,
    line                INTEGER,
    type                VARCHAR,            -- GPU activities, API calls, ...
    time_pct            DOUBLE,
    total_s             DOUBLE,
    calls               BIGINT,
    avg_s               DOUBLE,
    min_s               DOUBLE,
    max_s               DOUBLE,
    name                VARCHAR NOT NULL
);

-- The settings, typed, with their defaults.
CREATE OR REPLACE VIEW carbon_settings AS
SELECT
    coalesce((SELECT TRY_CAST(value AS DOUBLE) FROM settings WHERE key = 'pue'), 1.0) AS pue,
    (SELECT upper(value) FROM settings WHERE key = 'zone') AS zone,
    (SELECT TRY_CAST(value AS DOUBLE) FROM settings WHERE key = 'intensity_g_per_kwh') AS intensity_g_per_kwh,
    coalesce((SELECT TRY_CAST(value AS DOUBLE) FROM settings WHERE key = 'intensity_max_age_h'), 3.0)
        AS intensity_max_age_h;

-- One value per zone and time (measured before estimated before forecast, then the newest), with the
-- period it holds for: [valid_from, valid_to).
CREATE OR REPLACE VIEW carbon_intensity_periods AS
WITH best AS (
    SELECT * FROM carbon_intensity
    QUALIFY row_number() OVER (
        PARTITION BY zone, ts
        ORDER BY is_forecast, coalesce(is_estimated, true), updated_at DESC NULLS LAST,
                 fetched_at DESC NULLS LAST, source) = 1
)
SELECT b.zone, b.ts AS valid_from,
       least(coalesce(lead(b.ts) OVER w, TIMESTAMP '9999-12-31'),
             b.ts + to_microseconds(CAST(round(coalesce(b.period_s, s.intensity_max_age_h * 3600) * 1e6) AS BIGINT)))
           AS valid_to,
       b.intensity_g_per_kwh, b.emission_factor_type, b.is_estimated, b.estimation_method, b.is_forecast,
       b.source, b.updated_at,
       b.source || ' ' || b.zone ||
           CASE WHEN b.is_forecast THEN ' forecast' WHEN b.is_estimated THEN ' estimated'
                WHEN NOT b.is_estimated THEN ' measured' ELSE '' END AS intensity_source
FROM best b CROSS JOIN carbon_settings s
WINDOW w AS (PARTITION BY b.zone ORDER BY b.ts);

-- Zone, constant intensity and PUE of every run (run tags first, then the settings).
CREATE OR REPLACE VIEW run_carbon_params AS
SELECT r.run_id,
       upper(coalesce(tz.value, s.zone)) AS zone,
       TRY_CAST(ti.value AS DOUBLE) AS intensity_g_per_kwh,
       coalesce(TRY_CAST(tp.value AS DOUBLE), s.pue) AS pue,
       CASE WHEN tp.value IS NOT NULL THEN 'run tag' WHEN s.pue IS NOT NULL THEN 'setting' END AS pue_source
FROM runs r
CROSS JOIN carbon_settings s
LEFT JOIN run_tags tz ON tz.run_id = r.run_id AND tz.key = 'zone'
LEFT JOIN run_tags ti ON ti.run_id = r.run_id AND ti.key = 'intensity_g_per_kwh'
LEFT JOIN run_tags tp ON tp.run_id = r.run_id AND tp.key = 'pue';

-- The pieces of every run window (a power series' first..last sample; span_id NULL) and span window,
-- cut at intensity changes, with their energy and the intensity in force. p_zone, p_intensity and
-- p_pue override the run's zone, intensity and PUE where not NULL.
CREATE OR REPLACE MACRO carbon_segments(p_zone, p_intensity, p_pue) AS TABLE
WITH params AS (
    SELECT run_id,
           upper(coalesce(CAST(p_zone AS VARCHAR), zone)) AS zone,
           coalesce(CAST(p_intensity AS DOUBLE), intensity_g_per_kwh) AS const_g_per_kwh,
           CASE WHEN p_intensity IS NOT NULL THEN 'constant ' || CAST(CAST(p_intensity AS DOUBLE) AS VARCHAR) || ' (given)'
                WHEN intensity_g_per_kwh IS NOT NULL
                    THEN 'constant ' || CAST(intensity_g_per_kwh AS VARCHAR) || ' (run tag)' END AS const_source,
           coalesce(CAST(p_pue AS DOUBLE), pue) AS pue
    FROM run_carbon_params
),
series AS (
    SELECT sensor_id, metric, min(ts) AS first_ts, max(ts) AS last_ts FROM power_steps GROUP BY sensor_id, metric
),
windows AS (
    SELECT se.run_id, CAST(NULL AS VARCHAR) AS span_id, sr.sensor_id, sr.metric,
           sr.first_ts AS w_start, sr.last_ts AS w_end
    FROM series sr JOIN sensors se USING (sensor_id)
    UNION ALL
    SELECT sp.run_id, sp.span_id, sr.sensor_id, sr.metric, sp.start_ts, sp.end_ts
    FROM spans sp
    JOIN sensors se ON se.run_id = sp.run_id
    JOIN series sr ON sr.sensor_id = se.sensor_id
),
wp AS (
    SELECT w.*, p.zone, p.const_g_per_kwh, p.const_source, p.pue
    FROM windows w JOIN params p USING (run_id)
),
zone_span AS (
    SELECT zone, min(w_start) AS lo, max(w_end) AS hi FROM wp WHERE zone IS NOT NULL GROUP BY zone
),
periods AS (   -- only the intensity periods that overlap some window of their zone
    SELECT ip.* FROM carbon_intensity_periods ip
    JOIN zone_span z ON ip.zone = z.zone AND ip.valid_to > z.lo AND ip.valid_from <= z.hi
),
cuts AS (
    SELECT run_id, span_id, sensor_id, metric, zone, const_g_per_kwh, const_source, pue, w_start AS t FROM wp
    UNION
    SELECT run_id, span_id, sensor_id, metric, zone, const_g_per_kwh, const_source, pue, w_end FROM wp
    UNION
    SELECT wp.run_id, wp.span_id, wp.sensor_id, wp.metric, wp.zone, wp.const_g_per_kwh, wp.const_source, wp.pue,
           ip.valid_from
    FROM wp JOIN periods ip
      ON ip.zone = wp.zone AND ip.valid_from > wp.w_start AND ip.valid_from < wp.w_end
    WHERE wp.const_g_per_kwh IS NULL
    UNION
    SELECT wp.run_id, wp.span_id, wp.sensor_id, wp.metric, wp.zone, wp.const_g_per_kwh, wp.const_source, wp.pue,
           ip.valid_to
    FROM wp JOIN periods ip
      ON ip.zone = wp.zone AND ip.valid_to > wp.w_start AND ip.valid_to < wp.w_end
    WHERE wp.const_g_per_kwh IS NULL
),
-- E(t) at every cut: the as-of sample (latest ts <= t) found with a window over cuts and samples in one
-- order (an ASOF JOIN's plan depends on DuckDB's row estimates; a window does not).
merged AS (
    SELECT run_id, span_id, sensor_id, metric, zone, const_g_per_kwh, const_source, pue, t, 1 AS is_cut,
           CAST(NULL AS STRUCT(ts TIMESTAMP, cum DOUBLE, p DOUBLE, nts TIMESTAMP, np DOUBLE, st DOUBLE, gap BOOLEAN)) AS c
    FROM cuts
    UNION ALL
    SELECT NULL, NULL, c.sensor_id, c.metric, NULL, NULL, NULL, NULL, c.ts, 0,
           {'ts': c.ts, 'cum': c.cum_energy_j, 'p': c.power_w, 'nts': c.next_ts, 'np': c.next_power_w,
            'st': c.step_s, 'gap': c.is_gap}
    FROM power_cumulative c
    WHERE c.sensor_id IN (SELECT DISTINCT sensor_id FROM cuts)
),
as_of AS (
    SELECT *, last_value(c IGNORE NULLS) OVER (
                  PARTITION BY sensor_id, metric ORDER BY t, is_cut ROWS UNBOUNDED PRECEDING) AS a
    FROM merged
),
energy_at AS (
    SELECT run_id, span_id, sensor_id, metric, zone, const_g_per_kwh, const_source, pue, t,
           CASE WHEN a IS NULL THEN 0.0
                WHEN a.nts IS NULL OR a.gap OR a.st = 0 THEN a.cum
                ELSE a.cum + epoch(t - a.ts) * (a.p + (a.p + (a.np - a.p) * epoch(t - a.ts) / a.st)) / 2
           END AS e_j
    FROM as_of WHERE is_cut = 1
),
pieces AS (
    SELECT run_id, span_id, sensor_id, metric, zone, const_g_per_kwh, const_source, pue,
           t AS seg_start,
           lead(t) OVER w AS seg_end,
           lead(e_j) OVER w - e_j AS energy_j
    FROM energy_at
    WINDOW w AS (PARTITION BY run_id, span_id, sensor_id, metric ORDER BY t)
),
zone_years AS (
    SELECT DISTINCT zone, year(seg_start) AS yr FROM pieces WHERE zone IS NOT NULL AND seg_end IS NOT NULL
),
yearly AS (
    SELECT zy.zone, zy.yr, y.intensity_g_per_kwh,
           'yearly average ' || y.zone || ' ' || CAST(y.year AS VARCHAR) || ' (' || y.source || ')' AS intensity_source
    FROM zone_years zy
    JOIN carbon_intensity_yearly y ON y.zone = zy.zone OR y.zone = split_part(zy.zone, '-', 1)
    QUALIFY row_number() OVER (
        PARTITION BY zy.zone, zy.yr
        ORDER BY (y.zone = zy.zone) DESC, (y.year <= zy.yr) DESC, abs(y.year - zy.yr)) = 1
),
piece_rows AS (
    SELECT *, 1 AS is_piece,
           CAST(NULL AS STRUCT(vf TIMESTAMP, vt TIMESTAMP, g DOUBLE, src VARCHAR)) AS ip
    FROM pieces WHERE seg_end IS NOT NULL
),
-- the intensity period in force at each piece's start (as-of, by a window as above)
looked_up AS (
    SELECT * EXCLUDE (ip, is_piece, ipa),
           CASE WHEN seg_start < ipa.vt THEN ipa.g END AS series_g_per_kwh,
           CASE WHEN seg_start < ipa.vt THEN ipa.src END AS series_source
    FROM (
        SELECT *, last_value(ip IGNORE NULLS) OVER (
                      PARTITION BY zone ORDER BY seg_start, is_piece ROWS UNBOUNDED PRECEDING) AS ipa
        FROM (
            SELECT * FROM piece_rows
            UNION ALL BY NAME
            SELECT zone, valid_from AS seg_start, 0 AS is_piece,
                   {'vf': valid_from, 'vt': valid_to, 'g': intensity_g_per_kwh, 'src': intensity_source} AS ip
            FROM periods
        )
    )
    WHERE is_piece = 1
)
SELECT l.run_id, l.span_id, l.sensor_id, l.metric, l.zone, l.pue,
       l.seg_start, l.seg_end, l.energy_j,
       coalesce(l.const_g_per_kwh, l.series_g_per_kwh, y.intensity_g_per_kwh, s.intensity_g_per_kwh)
           AS intensity_g_per_kwh,
       CASE WHEN l.const_g_per_kwh IS NOT NULL THEN l.const_source
            WHEN l.series_g_per_kwh IS NOT NULL THEN l.series_source
            WHEN y.intensity_g_per_kwh IS NOT NULL THEN y.intensity_source
            WHEN s.intensity_g_per_kwh IS NOT NULL
                THEN 'constant ' || CAST(s.intensity_g_per_kwh AS VARCHAR) || ' (setting)'
            ELSE 'none: tag the run zone=ZONE or set an intensity (dlwh carbon set intensity_g_per_kwh G)'
       END AS intensity_source
FROM looked_up l
CROSS JOIN carbon_settings s
LEFT JOIN yearly y ON y.zone = l.zone AND y.yr = year(l.seg_start);

-- Emissions per run and power series (one row per run_energy row), with overrides.
CREATE OR REPLACE MACRO run_emissions_with(p_zone, p_intensity, p_pue) AS TABLE
SELECT g.run_id, g.sensor_id, se.kind AS sensor_kind, se.name AS sensor_name, se.tool, g.metric,
       min(g.seg_start) AS first_ts, max(g.seg_end) AS last_ts,
       any_value(g.zone) AS zone, any_value(g.pue) AS pue,
       sum(g.energy_j) AS energy_j,
       sum(g.energy_j) / 3.6e6 AS energy_kwh,
       sum(g.energy_j) / 3.6e6 * any_value(g.pue) AS facility_energy_kwh,
       sum(g.energy_j / 3.6e6 * g.pue * g.intensity_g_per_kwh) AS emissions_g,
       sum(g.energy_j / 3.6e6 * g.pue * g.intensity_g_per_kwh)
           / nullif(sum(g.energy_j) FILTER (WHERE g.intensity_g_per_kwh IS NOT NULL) / 3.6e6 * any_value(g.pue), 0)
           AS avg_intensity_g_per_kwh,
       coalesce(sum(g.energy_j) FILTER (WHERE g.intensity_g_per_kwh IS NULL), 0) / 3.6e6 AS energy_without_intensity_kwh,
       string_agg(DISTINCT g.intensity_source, '; ' ORDER BY g.intensity_source) AS intensity_source
FROM carbon_segments(p_zone, p_intensity, p_pue) g
JOIN sensors se USING (sensor_id)
WHERE g.span_id IS NULL
GROUP BY g.run_id, g.sensor_id, se.kind, se.name, se.tool, g.metric;

-- Emissions per span and power series, with overrides.
CREATE OR REPLACE MACRO span_emissions_with(p_zone, p_intensity, p_pue) AS TABLE
SELECT g.run_id, g.span_id, sp.parent_id, sp.kind, sp.name, sp.start_ts, sp.end_ts,
       epoch(sp.end_ts - sp.start_ts) AS duration_s,
       g.sensor_id, se.kind AS sensor_kind, se.name AS sensor_name, g.metric,
       any_value(g.zone) AS zone, any_value(g.pue) AS pue,
       sum(g.energy_j) AS energy_j,
       sum(g.energy_j) / 3.6e6 AS energy_kwh,
       sum(g.energy_j) / 3.6e6 * any_value(g.pue) AS facility_energy_kwh,
       sum(g.energy_j / 3.6e6 * g.pue * g.intensity_g_per_kwh) AS emissions_g,
       sum(g.energy_j / 3.6e6 * g.pue * g.intensity_g_per_kwh)
           / nullif(sum(g.energy_j) FILTER (WHERE g.intensity_g_per_kwh IS NOT NULL) / 3.6e6 * any_value(g.pue), 0)
           AS avg_intensity_g_per_kwh,
       coalesce(sum(g.energy_j) FILTER (WHERE g.intensity_g_per_kwh IS NULL), 0) / 3.6e6 AS energy_without_intensity_kwh,
       string_agg(DISTINCT g.intensity_source, '; ' ORDER BY g.intensity_source) AS intensity_source
FROM carbon_segments(p_zone, p_intensity, p_pue) g
JOIN spans sp ON sp.run_id = g.run_id AND sp.span_id = g.span_id
JOIN sensors se ON se.sensor_id = g.sensor_id
GROUP BY g.run_id, g.span_id, sp.parent_id, sp.kind, sp.name, sp.start_ts, sp.end_ts,
         g.sensor_id, se.kind, se.name, g.metric;

-- Sums over a run's (or span's) sensors: one power metric per sensor ('power' where the sensor has
-- it), whole-node sensors alone where the run has any (they already include the components), and
-- never RAPL sub-domains (cpu_cores, cpu_gpu lie inside cpu_package).
CREATE OR REPLACE MACRO run_emissions_total_with(p_zone, p_intensity, p_pue) AS TABLE
WITH e AS (
    SELECT * FROM run_emissions_with(p_zone, p_intensity, p_pue)
    WHERE sensor_kind NOT IN ('cpu_cores', 'cpu_gpu')
    QUALIFY row_number() OVER (PARTITION BY sensor_id ORDER BY metric = 'power' DESC, metric) = 1
),
k AS (SELECT *, bool_or(sensor_kind = 'node') OVER (PARTITION BY run_id) AS has_node FROM e)
SELECT run_id, min(first_ts) AS first_ts, max(last_ts) AS last_ts,
       any_value(zone) AS zone, any_value(pue) AS pue,
       count(*) AS n_sensors,
       string_agg(DISTINCT sensor_kind, ',' ORDER BY sensor_kind) AS sensor_kinds,
       sum(energy_kwh) AS energy_kwh,
       sum(facility_energy_kwh) AS facility_energy_kwh,
       sum(emissions_g) AS emissions_g,
       sum(emissions_g) / nullif(sum(facility_energy_kwh) - sum(energy_without_intensity_kwh * pue), 0)
           AS avg_intensity_g_per_kwh,
       sum(energy_without_intensity_kwh) AS energy_without_intensity_kwh,
       array_to_string(list_sort(list_distinct(flatten(list(string_split(intensity_source, '; '))))), '; ')
           AS intensity_source
FROM k WHERE NOT has_node OR sensor_kind = 'node'
GROUP BY run_id;

CREATE OR REPLACE MACRO span_emissions_total_with(p_zone, p_intensity, p_pue) AS TABLE
WITH e AS (
    SELECT * FROM span_emissions_with(p_zone, p_intensity, p_pue)
    WHERE sensor_kind NOT IN ('cpu_cores', 'cpu_gpu')
    QUALIFY row_number() OVER (PARTITION BY run_id, span_id, sensor_id ORDER BY metric = 'power' DESC, metric) = 1
),
k AS (SELECT *, bool_or(sensor_kind = 'node') OVER (PARTITION BY run_id, span_id) AS has_node FROM e)
SELECT run_id, span_id, any_value(parent_id) AS parent_id, any_value(kind) AS kind, any_value(name) AS name,
       any_value(start_ts) AS start_ts, any_value(end_ts) AS end_ts, any_value(duration_s) AS duration_s,
       any_value(zone) AS zone, any_value(pue) AS pue,
       count(*) AS n_sensors,
       string_agg(DISTINCT sensor_kind, ',' ORDER BY sensor_kind) AS sensor_kinds,
       sum(energy_kwh) AS energy_kwh,
       sum(facility_energy_kwh) AS facility_energy_kwh,
       sum(emissions_g) AS emissions_g,
       sum(emissions_g) / nullif(sum(facility_energy_kwh) - sum(energy_without_intensity_kwh * pue), 0)
           AS avg_intensity_g_per_kwh,
       sum(energy_without_intensity_kwh) AS energy_without_intensity_kwh,
       array_to_string(list_sort(list_distinct(flatten(list(string_split(intensity_source, '; '))))), '; ')
           AS intensity_source
FROM k WHERE NOT has_node OR sensor_kind = 'node'
GROUP BY run_id, span_id;

CREATE OR REPLACE VIEW run_emissions AS SELECT * FROM run_emissions_with(NULL, NULL, NULL);
CREATE OR REPLACE VIEW span_emissions AS SELECT * FROM span_emissions_with(NULL, NULL, NULL);
CREATE OR REPLACE VIEW run_emissions_total AS SELECT * FROM run_emissions_total_with(NULL, NULL, NULL);
CREATE OR REPLACE VIEW span_emissions_total AS SELECT * FROM span_emissions_total_with(NULL, NULL, NULL);

-- GPU kernels beside the power of the same run: per run, kernel (nvprof's ' [correlation]' suffix
-- dropped) and device: calls, time, the GPU energy during the calls (their ends rounded to the µs) (E(end) - E(start) of the run's GPU
-- 'power' series; every GPU of the run when the trace does not give the device index), and FLOPs from
-- kernel_metrics (flop_count_sp/dp/hp averages x calls) where the same kernel was measured.
CREATE OR REPLACE VIEW kernel_energy AS
WITH k AS (
    SELECT run_id, kind, regexp_replace(name, '\s*\[\d+\]$', '') AS kernel, device,
           TRY_CAST(regexp_extract(device, '\((\d+)\)\s*$', 1) AS INTEGER) AS device_index,
           start_ts, start_ts + to_microseconds(CAST(round(duration_s * 1e6) AS BIGINT)) AS end_ts, duration_s
    FROM kernels WHERE start_ts IS NOT NULL
),
pairs AS (
    SELECT k.*, se.sensor_id
    FROM k JOIN sensors se
      ON se.run_id = k.run_id AND se.kind = 'gpu'
     AND (k.device_index IS NULL OR se.device_index IS NULL OR se.device_index = k.device_index)
),
points AS (   -- kernel starts and ends; E(t) as-of by a window (see carbon_segments)
    SELECT run_id, kernel, device, sensor_id, start_ts, end_ts, row_number() OVER () AS call_id FROM pairs
),
merged AS (
    SELECT call_id, sensor_id, start_ts AS t, 1 AS is_point, 'start' AS edge,
           CAST(NULL AS STRUCT(ts TIMESTAMP, cum DOUBLE, p DOUBLE, nts TIMESTAMP, np DOUBLE, st DOUBLE, gap BOOLEAN)) AS c
    FROM points
    UNION ALL
    SELECT call_id, sensor_id, end_ts, 1, 'end', NULL FROM points
    UNION ALL
    SELECT NULL, c.sensor_id, c.ts, 0, NULL,
           {'ts': c.ts, 'cum': c.cum_energy_j, 'p': c.power_w, 'nts': c.next_ts, 'np': c.next_power_w,
            'st': c.step_s, 'gap': c.is_gap}
    FROM power_cumulative c
    WHERE c.metric = 'power' AND c.sensor_id IN (SELECT DISTINCT sensor_id FROM points)
),
at_points AS (
    SELECT call_id, edge,
           CASE WHEN a IS NULL THEN 0.0
                WHEN a.nts IS NULL OR a.gap OR a.st = 0 THEN a.cum
                ELSE a.cum + epoch(t - a.ts) * (a.p + (a.p + (a.np - a.p) * epoch(t - a.ts) / a.st)) / 2
           END AS e_j
    FROM (SELECT *, last_value(c IGNORE NULLS) OVER (
                        PARTITION BY sensor_id ORDER BY t, is_point ROWS UNBOUNDED PRECEDING) AS a
          FROM merged)
    WHERE is_point = 1
),
at_end AS (
    SELECT p.*, s.e_j AS e_start_j, e.e_j AS e_end_j
    FROM points p
    JOIN at_points s ON s.call_id = p.call_id AND s.edge = 'start'
    JOIN at_points e ON e.call_id = p.call_id AND e.edge = 'end'
),
energy AS (
    SELECT run_id, kernel, device, sum(e_end_j - e_start_j) AS gpu_energy_j, count(DISTINCT sensor_id) AS n_gpu_sensors,
           sum(epoch(end_ts - start_ts)) / count(DISTINCT sensor_id) AS timed_s   -- durations at the µs resolution of TIMESTAMP
    FROM at_end GROUP BY run_id, kernel, device
),
calls AS (
    SELECT run_id, kind, kernel, device, count(*) AS calls, sum(duration_s) AS total_s,
           min(start_ts) AS first_ts, max(end_ts) AS last_ts
    FROM k GROUP BY run_id, kind, kernel, device
),
flops AS (
    SELECT run_id, kernel,
           max(avg_value) FILTER (WHERE metric = 'flop_count_sp') AS flop_count_sp,
           max(avg_value) FILTER (WHERE metric = 'flop_count_dp') AS flop_count_dp,
           max(avg_value) FILTER (WHERE metric = 'flop_count_hp') AS flop_count_hp
    FROM kernel_metrics GROUP BY run_id, kernel
)
SELECT c.run_id, c.kind, c.kernel, c.device, c.calls, c.total_s, c.first_ts, c.last_ts,
       e.gpu_energy_j, e.n_gpu_sensors,
       e.gpu_energy_j / nullif(e.timed_s * e.n_gpu_sensors, 0) AS avg_gpu_power_w,
       CASE WHEN coalesce(f.flop_count_sp, f.flop_count_dp, f.flop_count_hp) IS NOT NULL THEN
           c.calls * (coalesce(f.flop_count_sp, 0) + coalesce(f.flop_count_dp, 0) + coalesce(f.flop_count_hp, 0))
       END AS flops,
       f.flop_count_sp, f.flop_count_dp, f.flop_count_hp,
       CASE WHEN coalesce(f.flop_count_sp, f.flop_count_dp, f.flop_count_hp) IS NOT NULL THEN
           c.calls * (coalesce(f.flop_count_sp, 0) + coalesce(f.flop_count_dp, 0) + coalesce(f.flop_count_hp, 0))
           / nullif(c.total_s, 0) END AS flops_per_s,
       CASE WHEN coalesce(f.flop_count_sp, f.flop_count_dp, f.flop_count_hp) IS NOT NULL THEN
           c.calls * (coalesce(f.flop_count_sp, 0) + coalesce(f.flop_count_dp, 0) + coalesce(f.flop_count_hp, 0))
           / nullif(e.gpu_energy_j, 0) END AS flops_per_j
FROM calls c
LEFT JOIN energy e USING (run_id, kernel, device)
LEFT JOIN flops f ON f.run_id = c.run_id
                 AND (f.kernel = c.kernel OR f.kernel = regexp_replace(c.kernel, '^void\s+', '')
                      OR c.kernel = regexp_replace(f.kernel, '^void\s+', ''));
