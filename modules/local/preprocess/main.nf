// Cut a sample's sequences into chunks (--chunk-length, from task.ext.args) and keep each chunk's stop-free frames.
process PREPROCESS {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(reads, stageAs: 'input/*')

    output:
    tuple val(meta), path('preprocess/identified_nucleotide.fa'), path('preprocess/identified_protein.faa'), emit: frames
    tuple val(meta), path('preprocess/records.tsv')                                                        , emit: records
    tuple val(meta), path('preprocess/chunked.fa')                                                         , emit: chunks
    tuple val(meta), path('preprocess/frame_stats.tsv')                                                    , emit: frame_stats
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | cut -d" " -f2'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    virnucpro preprocess \\
        --input ${reads} \\
        --sample '${meta.id}' \\
        --outdir preprocess \\
        --workers ${task.cpus} \\
        ${args}
    """

    stub:
    """
    mkdir -p preprocess
    touch preprocess/chunked.fa preprocess/identified_nucleotide.fa preprocess/identified_protein.faa
    printf 'record_id\\tlength\\tn_chunks\\tn_frames\\tstatus\\n' > preprocess/records.tsv
    printf 'frames\\ttokens\\tlargest\\n' > preprocess/frame_stats.tsv
    """
}
