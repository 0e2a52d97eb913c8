// Split a sample's frames into contiguous, token-balanced shards (one EMBED task each).
process SHARD {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(nucleotide), path(protein), path(frame_stats)

    output:
    tuple val(meta), path('shards/shard_*.tsv', arity: '1..*'), emit: shards
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | cut -d" " -f2'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    virnucpro shard \\
        --nucleotide ${nucleotide} \\
        --protein ${protein} \\
        --frame-stats ${frame_stats} \\
        --outdir shards \\
        ${args}
    """

    stub:
    """
    mkdir -p shards
    printf 'frame_id\\tnucleotide\\tprotein\\n' > shards/shard_00000.tsv
    """
}
