// Embed one shard of frames, DNABERT-S (nucleotide) and ESM-2 (protein) mean-pooled features, and score them with
// the VirNucPro classifier in the same task, once the GPU is handed back: per-frame predictions in input order.
// The features (13 KB a frame) are written only when kept (ext.save_features, from --save_features).
// Precision, device and GPU placement come through task.ext.args (conf/modules.config). The checkpoint directory
// is a plain string outside the task directory: a retried or resumed task runs in a new work dir and must still
// find it, and a staged `path` would put its changing content into the task hash. The checkpoint root also holds
// the torch.compile cache and the model hash cache that all tasks of the run share, PROVENANCE included (it runs
// beside the first EMBED tasks, not before them): each model file is read once per run. A wrong model fails
// EMBED's own checks before any GPU work, as it fails PROVENANCE's.
process EMBED {
    tag "${meta.id}:${meta.shard}"
    label 'process_gpu'

    input:
    tuple val(meta), path(shard)
    path(esm_model, stageAs: 'models/esm/*')
    path(dnabert_model, stageAs: 'models/dnabert/*')
    path(classifier, stageAs: 'models/classifier/*')
    val checkpoint_dir

    output:
    tuple val(meta), path("${prefix}.predictions.tsv"), emit: predictions
    tuple val(meta), path("${prefix}.features.npz") , emit: features, optional: true
    tuple val(meta), path("${prefix}.embed.json")   , emit: summary
    // Every `name: version` line of `virnucpro --versions` (python, torch, transformers, numpy); the workflow splits
    // them into one entry per tool. Runs in the task's environment, so it reports what the task imported.
    tuple val("${task.process}"), val('virnucpro --versions'), eval('virnucpro --versions'), topic: versions, emit: versions_python

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}.${meta.shard}"
    def features = task.ext.save_features ? "--out ${prefix}.features.npz" : ''
    """
    virnucpro embed \\
        --frames ${shard} \\
        --esm-model ${esm_model} \\
        --dnabert-model ${dnabert_model} \\
        --classifier ${classifier} \\
        --predictions ${prefix}.predictions.tsv \\
        ${features} \\
        --summary ${prefix}.embed.json \\
        --checkpoint-dir '${checkpoint_dir}/${meta.id}' \\
        --hash-cache '${checkpoint_dir}' \\
        --compile-cache '${checkpoint_dir}/compile-cache' \\
        ${args}
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}.${meta.shard}"
    """
    printf 'Sequence_ID\\tPrediction\\tscore1\\tscore2\\n' > ${prefix}.predictions.tsv
    ${task.ext.save_features ? "touch ${prefix}.features.npz" : ''}
    echo '{}' > ${prefix}.embed.json
    """
}
