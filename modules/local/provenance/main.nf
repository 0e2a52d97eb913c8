// The run's model check (every problem of the three model files, one line each; exit 2 stops the run), then its
// model files (sha256, size, resolved path, test model or not), widths, precision and chunk length, for the report.
// It runs beside PREPROCESS, SHARD and the first EMBED tasks: nothing waits for it but REPORT. The hash cache lives
// in the checkpoint directory (a plain string, as for EMBED, whose tasks share it: the first to reach a model
// file hashes it, the others wait and reuse the digest), so a run reads a 6 GB ESM-2 checkpoint once, and a
// resumed or repeated run not at all.
process PROVENANCE {
    tag "models"
    label 'process_single'

    input:
    path(esm_model, stageAs: 'models/esm/*')
    path(dnabert_model, stageAs: 'models/dnabert/*')
    path(classifier, stageAs: 'models/classifier/*')
    val cache_dir

    output:
    path('model_provenance.json'), emit: provenance
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | cut -d" " -f2'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    virnucpro provenance \\
        --esm-model ${esm_model} \\
        --dnabert-model ${dnabert_model} \\
        --classifier ${classifier} \\
        --hash-cache '${cache_dir}' \\
        --out model_provenance.json \\
        ${args}
    """

    stub:
    """
    echo '{"models": {}}' > model_provenance.json
    """
}
