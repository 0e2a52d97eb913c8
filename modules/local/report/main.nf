// One report for the whole run: HTML summary and MultiQC custom content over every sample, with the output
// documentation copied beside it (the report links to it).
process REPORT {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(summaries, arity: '1..*', stageAs: 'summaries/*'), path(embed_summaries, arity: '1..*', stageAs: 'embed/*')
    path(provenance, stageAs: 'provenance/*')
    path(docs, stageAs: 'docs/*')

    output:
    tuple val(meta), path('report/*'), emit: report
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | cut -d" " -f2'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def sample_summaries = (summaries instanceof List ? summaries : [summaries]).join(' ')
    def shard_summaries = (embed_summaries instanceof List ? embed_summaries : [embed_summaries]).join(' ')
    """
    virnucpro report \\
        --summaries ${sample_summaries} \\
        --embed-summaries ${shard_summaries} \\
        --provenance ${provenance} \\
        --docs ${docs} \\
        --outdir report \\
        ${args}
    """

    stub:
    """
    mkdir -p report
    touch report/virnucpro_report.html report/virnucpro_summary_mqc.tsv report/virnucpro_calls_mqc.tsv report/output.md
    echo '{}' > report/virnucpro_score_histogram_mqc.json
    """
}
