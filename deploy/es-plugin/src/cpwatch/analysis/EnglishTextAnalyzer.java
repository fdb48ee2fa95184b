package cpwatch.analysis;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.LowerCaseFilter;
import org.apache.lucene.analysis.StopFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.Tokenizer;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.apache.lucene.analysis.en.EnglishPossessiveFilter;
import org.apache.lucene.analysis.en.PorterStemFilter;
import org.apache.lucene.analysis.standard.StandardTokenizer;

/**
 * English text for cpwatch's indices, the same chain as Elasticsearch's built-in english
 * analyzer with its defaults: Unicode word boundaries, "'s" dropped ("Salvador's" -> "salvador"),
 * lower case, Lucene's English stop words, then the Porter stemmer ("mining" -> "mine",
 * "reserves" -> "reserv"). Every class here ships in the distribution's own Lucene jars.
 */
final class EnglishTextAnalyzer extends Analyzer {

    @Override
    protected TokenStreamComponents createComponents(String fieldName) {
        Tokenizer words = new StandardTokenizer();
        TokenStream chain = new EnglishPossessiveFilter(words);
        chain = new LowerCaseFilter(chain);
        chain = new StopFilter(chain, EnglishAnalyzer.ENGLISH_STOP_WORDS_SET);
        chain = new PorterStemFilter(chain);
        return new TokenStreamComponents(words, chain);
    }

    /** Prefix and other multi-term queries are only lower-cased, never stemmed. */
    @Override
    protected TokenStream normalize(String fieldName, TokenStream in) {
        return new LowerCaseFilter(in);
    }
}
