// Embed one shard of frames: DNABERT-S (nucleotide) and ESM-2 (protein) mean-pooled features.
// Precision, device and GPU placement come through task.ext.args (conf/modules.config). The checkpoint directory
// is a plain string outside the task directory: a retried or resumed task runs in a new work dir and must still
// find it, and a staged `path` would put its changing content into the task hash. The run's model-check record
// (PROVENANCE) gives the model checksums, so no task hashes the models again, and makes EMBED wait for the check;
// the torch.compile cache under the checkpoint root is shared by all tasks of the run.
process EMBED {
    tag "${meta.id}:${meta.shard}"
    label 'process_gpu'

    input:
    tuple val(meta), path(shard)
    path(esm_model, stageAs: 'models/esm/*')
    path(dnabert_model, stageAs: 'models/dnabert/*')
    val checkpoint_dir
    path(model_check, stageAs: 'model_check/*')

    output:
    tuple val(meta), path("${prefix}.features.npz"), emit: features
    tuple val(meta), path("${prefix}.embed.json")  , emit: summary
    // Every `name: version` line of `virnucpro --versions` (python, torch, transformers, numpy); the workflow splits
    // them into one entry per tool. Runs in the task's environment, so it reports what the task imported.
    tuple val("${task.process}"), val('virnucpro --versions'), eval('virnucpro --versions'), topic: versions, emit: versions_python

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}.${meta.shard}"
    """
    virnucpro embed \\
        --frames ${shard} \\
        --esm-model ${esm_model} \\
        --dnabert-model ${dnabert_model} \\
        --out ${prefix}.features.npz \\
        --summary ${prefix}.embed.json \\
        --checkpoint-dir '${checkpoint_dir}/${meta.id}' \\
        --model-check ${model_check} \\
        --compile-cache '${checkpoint_dir}/compile-cache' \\
        ${args}
    """

    stub:
    prefix = task.ext.prefix ?: "${meta.id}.${meta.shard}"
    """
    touch ${prefix}.features.npz
    echo '{}' > ${prefix}.embed.json
    """
}
