// Score one shard's features with the VirNucPro classifier (per-frame predictions, input order).
// process_low: a 400,000-frame shard's features are 5.3 GB, held twice while scoring.
process CLASSIFY {
    tag "${meta.id}:${meta.shard}"
    label 'process_low'

    input:
    tuple val(meta), path(features)
    path(classifier, stageAs: 'models/classifier/*')

    output:
    tuple val(meta), path("${prefix}.predictions.tsv"), emit: predictions
    // Only virnucpro's own version: EMBED reports python, torch, transformers and numpy of the same environment
    // (`virnucpro --versions` imports torch, 2 s a task).
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | cut -d" " -f2'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}.${meta.shard}"
    """
    virnucpro classify \\
        --features ${features} \\
        --classifier ${classifier} \\
        --out ${prefix}.predictions.tsv \\
        ${args}
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}.${meta.shard}"
    """
    printf 'Sequence_ID\\tPrediction\\tscore1\\tscore2\\n' > ${prefix}.predictions.tsv
    """
}
