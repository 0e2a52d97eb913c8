// The run's MultiQC report: the VirNucPro sections and General Statistics columns (REPORT's *_mqc files), and the
// software versions (the collated *_mqc_versions.yml). MultiQC comes from PyPI, pinned in requirements.txt, and
// runs through bin/virnucpro, from the same environment as every other step.
process MULTIQC {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(multiqc_files, arity: '1..*', stageAs: 'inputs/*')
    path(multiqc_config, stageAs: 'config/*')

    output:
    tuple val(meta), path('multiqc/multiqc_report.html'), emit: report
    tuple val(meta), path('multiqc/multiqc_data')       , emit: data

    // No `topic: versions` output: MultiQC reads the collated versions, which would then wait on MultiQC itself.

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    // General Statistics: the config's virnucpro_general_stats section reads the per-sample summary table; without
    // its custom-content header, which would file it under the summary table's own id.
    // HOME: MultiQC may write caches there, and a container run as the user cannot write the image's HOME.
    """
    mkdir -p general_stats
    grep -v '^#' inputs/virnucpro_summary_mqc.tsv > general_stats/virnucpro_general_stats.tsv
    export HOME="\$PWD"
    virnucpro multiqc \\
        --config ${multiqc_config} \\
        --outdir multiqc \\
        ${args} \\
        inputs general_stats
    """

    stub:
    """
    mkdir -p multiqc/multiqc_data
    touch multiqc/multiqc_report.html
    """
}
