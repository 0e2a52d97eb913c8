// Paired reads (samplesheet fastq_1 + fastq_2): both mates of every pair in one FASTA, ids made unique
// (virnucpro/io/mates.py), so that the rest of the pipeline sees one sequence file per sample.
process POOL_MATES {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(fastq_1, stageAs: 'input/1/*'), path(fastq_2, stageAs: 'input/2/*')

    output:
    tuple val(meta), path("${meta.id}.mates.fa"), emit: reads
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | cut -d" " -f2'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    virnucpro pool-mates \\
        --fastq-1 ${fastq_1} \\
        --fastq-2 ${fastq_2} \\
        --sample '${meta.id}' \\
        --out ${meta.id}.mates.fa \\
        ${args}
    """

    stub:
    """
    touch ${meta.id}.mates.fa
    """
}
