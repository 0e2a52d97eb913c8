#!/usr/bin/env nextflow
/*
 * virnucpro: VirNucPro viral sequence classification as a Nextflow pipeline.
 *   nextflow run main.nf --input reads.fa --esm_model ... --dnabert_model ... --classifier ... [-profile gpu]
 *   nextflow run main.nf --help
 */

include { PIPELINE_INITIALISATION; PIPELINE_COMPLETION } from './subworkflows/local/utils_virnucpro'
include { VIRNUCPRO                                    } from './workflows/virnucpro'

workflow {
    main:
    PIPELINE_INITIALISATION()
    VIRNUCPRO(PIPELINE_INITIALISATION.out.samples)
    PIPELINE_COMPLETION()
}
